// The Python client (client/python/secret_resolver_client.py) against the real sidecar binary:
// Debian's /usr/bin/python3 generates the stubs from proto/ into a temporary directory, resolves
// through the sidecar's Unix socket, and prints metadata as JSON, which this test checks; with
// --redact it redacts its standard input through RedactLogs. It shows the API works for a
// caller that is not C++. No value or token is printed.
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "client/redactor/redactor.h"
#include "nlohmann/json.hpp"
#include "resolver/secret_bytes.h"
#include "resolver/secret_store.h"
#include "resolver/sqlite/sqlite_secret_store.h"
#include "tests/integration/sidecar_process.h"

namespace secret_resolver {
namespace {

using ::testing::HasSubstr;

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kStack[] = "stacks-42";
constexpr char kService[] = "grafana-workflows";
constexpr char kApiValue[] = "planted-python-api-value-5e1a";

struct PythonRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Single-quoted for /bin/sh; the arguments are paths and names, never secrets.
std::string ShellQuote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

class PythonClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::SidecarState> state = testing::SidecarState::Create();
    ASSERT_TRUE(state.ok()) << state.status();
    state_ = std::make_unique<testing::SidecarState>(*std::move(state));
    {
      absl::StatusOr<std::unique_ptr<SqliteSecretStore>> store =
          SqliteSecretStore::Open(state_->store_path, &state_->key_ring);
      ASSERT_TRUE(store.ok()) << store.status();
      for (int version = 1; version <= 2; ++version) {  // the client must see version 2
        SecretWrite write;
        write.stack = kStack;
        write.name = "workflows/http/auth-token";
        write.decrypters = {kService};
        write.actor = "python-client-test";
        write.value = SecretBytes(absl::StrCat(kApiValue, version));
        ASSERT_TRUE((*store)->Put(write).ok());
      }
    }
    absl::StatusOr<std::unique_ptr<testing::SidecarProcess>> sidecar =
        testing::SidecarProcess::Start(*state_);
    ASSERT_TRUE(sidecar.ok()) << sidecar.status();
    sidecar_ = *std::move(sidecar);
    token_ = state_->Token(kStack, kService);
    ASSERT_FALSE(token_.empty());
    token_file_ = state_->dir + "/token";
    {
      std::ofstream out(token_file_);
      out << token_ << "\n";
    }
    ASSERT_EQ(chmod(token_file_.c_str(), 0600), 0);
  }

  // `extra` args follow the --ref flags (e.g. {"--pin", "api-token=1"}); `stdin_text`, when not
  // empty, is the client's standard input (from a file).
  PythonRun RunClient(const std::string& stack, const std::vector<std::string>& refs,
                      const std::vector<std::string>& extra = {},
                      const std::string& stdin_text = "") {
    std::vector<std::string> args = {kPython,
                                     "client/python/secret_resolver_client.py",
                                     "--proto-dir",
                                     "proto",
                                     "--target",
                                     sidecar_->target(),
                                     "--stack",
                                     stack,
                                     "--token-file",
                                     token_file_};
    for (const std::string& ref : refs) {
      args.push_back("--ref");
      args.push_back(ref);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<std::string> quoted;
    for (const std::string& a : args) quoted.push_back(ShellQuote(a));
    const std::string err_path = state_->dir + "/python.err";
    std::string command = absl::StrCat("PYTHONDONTWRITEBYTECODE=1 ", absl::StrJoin(quoted, " "),
                                       " 2>", ShellQuote(err_path));
    if (!stdin_text.empty()) {
      const std::string in_path = state_->dir + "/python.in";
      std::ofstream(in_path, std::ios::binary) << stdin_text;
      absl::StrAppend(&command, " <", ShellQuote(in_path));
    }
    PythonRun run;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return run;
    char buffer[4096];
    size_t n = 0;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) run.out.append(buffer, n);
    const int status = pclose(pipe);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    run.err = ReadFile(err_path);
    for (const std::string& hidden : {token_, absl::StrCat(kApiValue, 2)}) {
      EXPECT_FALSE(absl::StrContains(run.out, hidden)) << "a value or the token on stdout";
      EXPECT_FALSE(absl::StrContains(run.err, hidden)) << "a value or the token on stderr";
    }
    return run;
  }

  std::unique_ptr<testing::SidecarState> state_;
  std::unique_ptr<testing::SidecarProcess> sidecar_;
  std::string token_;
  std::string token_file_;
};

TEST_F(PythonClientTest, ResolvesVersionPlaceholderAndPerReferenceErrors) {
  const PythonRun run = RunClient(kStack, {"api-token=secret://workflows/http/auth-token",
                                           "gone=secret://workflows/none"});
  ASSERT_EQ(run.exit_code, 0) << "stderr: " << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << "stdout is not a JSON object";
  const nlohmann::json& api = json["api-token"];
  EXPECT_EQ(api["name"], "workflows/http/auth-token");
  EXPECT_EQ(api["version"], 2);
  EXPECT_EQ(api["placeholder"], "***SECRET_REDACTED:api-token***");
  EXPECT_EQ(api["fingerprint"].get<std::string>().rfind("hmac-sha256:", 0), 0u);
  EXPECT_EQ(api["stale"], false);
  EXPECT_EQ(api["value_bytes"], std::string(kApiValue).size() + 1);
  EXPECT_EQ(json["gone"]["error"]["code"], "NOT_FOUND");
  EXPECT_THAT(json["gone"]["error"]["message"].get<std::string>(), HasSubstr("ref \"gone\""));
}

TEST_F(PythonClientTest, PinsAVersionAndSaysANewerOneExists) {
  const PythonRun run = RunClient(kStack, {"api-token=secret://workflows/http/auth-token"},
                                  {"--pin", "api-token=1", "--run-id", "run-py-1"});
  ASSERT_EQ(run.exit_code, 0) << "stderr: " << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << "stdout is not a JSON object";
  EXPECT_EQ(json["api-token"]["version"], 1);
  EXPECT_EQ(json["api-token"]["superseded"], true);
  EXPECT_EQ(sidecar_->Terminate(), 0);  // the audit line is flushed by then
  EXPECT_TRUE(absl::StrContains(sidecar_->Log(), "\"run_id\":\"run-py-1\""));
}

TEST_F(PythonClientTest, ChecksReferencesWithoutResolvingThem) {
  const PythonRun run = RunClient(kStack, {"api-token=secret://workflows/http/auth-token",
                                           "gone=secret://workflows/none"},
                                  {"--check"});
  ASSERT_EQ(run.exit_code, 0) << "stderr: " << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << "stdout is not a JSON object";
  EXPECT_EQ(json["api-token"]["name"], "workflows/http/auth-token");
  EXPECT_EQ(json["api-token"]["version"], 2);
  EXPECT_FALSE(json["api-token"].contains("value_bytes"));
  EXPECT_EQ(json["gone"]["error"]["code"], "NOT_FOUND");
}

TEST_F(PythonClientTest, WrongStackIsPermissionDenied) {
  const PythonRun run = RunClient("stacks-43", {"api-token=secret://workflows/http/auth-token"});
  EXPECT_EQ(run.exit_code, 3) << "stderr: " << run.err;
  const nlohmann::json json = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << "stdout is not a JSON object";
  EXPECT_EQ(json["error"]["code"], "PERMISSION_DENIED");
}

TEST_F(PythonClientTest, RedactsStandardInputThroughTheSidecar) {
  const std::string value = absl::StrCat(kApiValue, 2);
  std::string text;
  for (int i = 0; i < 50; ++i) {
    absl::StrAppend(&text, "step ", i, " token=", value, " b64=", absl::Base64Escape(value), "\n");
  }
  // Reads of 7 bytes: the values are cut across chunks again and again.
  const PythonRun run =
      RunClient(kStack, {"api-token=secret://workflows/http/auth-token"},
                {"--redact", "--chunk-bytes", "7"}, text);
  ASSERT_EQ(run.exit_code, 0) << "stderr: " << run.err;
  std::vector<client::RedactionSecret> secrets;
  secrets.push_back({SecretBytes(value), "***SECRET_REDACTED:api-token***"});
  EXPECT_TRUE(run.out == client::Redactor::Create(std::move(secrets))->RedactAll(text))
      << "the output differs from the library's redaction of the whole text";
  EXPECT_THAT(run.out, HasSubstr("step 49 token=***SECRET_REDACTED:api-token*** b64="));
}

TEST_F(PythonClientTest, RedactRefusedForADeniedRef) {
  const PythonRun run = RunClient(kStack, {"gone=secret://workflows/none"}, {"--redact"},
                                  "some log text\n");
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err, HasSubstr("NOT_FOUND"));
}

}  // namespace
}  // namespace secret_resolver
