#include "tests/server/auth/token_minter.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace secret_resolver {
namespace auth {
namespace testing {
namespace {

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kScript[] = "tests/server/auth/mint_tokens.py";

std::string ScriptPath() {
  // Tests run in the runfiles tree of the main repository, so the data file is found relative
  // to the working directory; TEST_SRCDIR covers being started from elsewhere.
  if (access(kScript, R_OK) == 0) return kScript;
  const char* srcdir = std::getenv("TEST_SRCDIR");
  if (srcdir != nullptr) return absl::StrCat(srcdir, "/secret_resolver/", kScript);
  return kScript;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string TempDir(absl::string_view name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/", name);
  mkdir(dir.c_str(), 0700);
  return dir;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename to ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<MintedTokens> MintTokens(const std::string& dir, const nlohmann::json& specs) {
  mkdir(dir.c_str(), 0700);
  const std::string specs_path = dir + "/specs.json";
  const std::string stderr_path = dir + "/mint_stderr.txt";
  absl::Status written = WriteFileAtomically(specs_path, specs.dump());
  if (!written.ok()) return written;

  const std::string script = ScriptPath();
  // -I: ignore PYTHON* variables and the user site, so only Debian's packages are used.
  // -B: do not write .pyc files into the (read-only) runfiles tree.
  std::vector<std::string> args = {kPython, "-I", "-B", script, dir, specs_path};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, kPython, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot run ", kPython, ": ", strerror(rc)));
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    absl::StatusOr<std::string> err = ReadFile(stderr_path);
    return absl::InternalError(absl::StrCat(
        "mint_tokens.py (", script, ") failed: ", err.ok() ? *err : std::string("(no stderr)")));
  }

  MintedTokens minted;
  minted.dir = dir;
  absl::StatusOr<std::string> keys = ReadFile(dir + "/keys.json");
  if (!keys.ok()) return keys.status();
  absl::StatusOr<std::string> tokens = ReadFile(dir + "/tokens.json");
  if (!tokens.ok()) return tokens.status();
  minted.public_jwks = nlohmann::json::parse(*keys, nullptr, /*allow_exceptions=*/false);
  nlohmann::json token_map = nlohmann::json::parse(*tokens, nullptr, false);
  if (!minted.public_jwks.is_object() || !token_map.is_object()) {
    return absl::InternalError("mint_tokens.py wrote unreadable JSON");
  }
  for (auto& [name, token] : token_map.items()) minted.tokens[name] = token.get<std::string>();
  return minted;
}

std::string JwksDocument(const MintedTokens& minted, const std::vector<std::string>& key_names) {
  nlohmann::json keys = nlohmann::json::array();
  for (const std::string& name : key_names) keys.push_back(minted.public_jwks.at(name));
  return nlohmann::json{{"keys", keys}}.dump();
}

}  // namespace testing
}  // namespace auth
}  // namespace secret_resolver
