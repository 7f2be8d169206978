#include "tools/secretctl/secretctl.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "tools/secretctl/command.h"
#include "tools/secretctl/exit_codes.h"
#include "tools/secretctl/key_commands.h"
#include "tools/secretctl/output.h"
#include "tools/secretctl/sidecar_commands.h"
#include "tools/secretctl/store_commands.h"

namespace secret_resolver {
namespace secretctl {
namespace {

// Every command, in the order `secretctl --help` lists them.
std::vector<Command> Commands() {
  std::vector<Command> commands;
  commands.push_back(InitCommand());
  commands.push_back(GenKekCommand());
  commands.push_back(CreateCommand());
  commands.push_back(UpdateCommand());
  commands.push_back(GetCommand());
  commands.push_back(ListCommand());
  commands.push_back(VersionsCommand());
  commands.push_back(DeleteCommand());
  commands.push_back(RotateKekCommand());
  commands.push_back(MigrateCommand());
  commands.push_back(DevKeyCommand());
  commands.push_back(DevTokenCommand());
  commands.push_back(ResolveCommand());
  commands.push_back(RenderCommand());
  commands.push_back(CheckCommand());
  commands.push_back(RedactCommand());
  return commands;
}

std::string TopLevelHelp(const std::vector<Command>& commands) {
  std::string list;
  for (const Command& command : commands) {
    std::string line = absl::StrCat("  ", command.spec.name);
    line.resize(14, ' ');
    absl::StrAppend(&list, line, command.spec.summary, "\n");
  }
  return absl::StrCat(
      "usage: secretctl COMMAND [FLAGS]\n"
      "       secretctl COMMAND --help\n\n"
      "The operators' CLI for secret-resolver's secret store, (resolve, render) a caller of a\n"
      "running sidecar, and (check) a linter for workflow definitions' secret references.\n\n"
      "commands:\n",
      list,
      "\nSecret values are read from standard input or --value-file, never from the command\n"
      "line (arguments are visible to every local user and kept in shell history), and are\n"
      "never printed, except by `resolve --reveal` and `render`, which exist to do so.\n\n",
      ExitCodeHelp());
}

}  // namespace

int Run(const std::vector<std::string>& args) {
  const std::vector<Command> commands = Commands();
  if (args.empty()) {
    Print(stderr, absl::StrCat("secretctl: no command given\n\n", TopLevelHelp(commands)));
    return kExitUsage;
  }
  std::string name = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (name == "--help" || name == "-h" || (name == "help" && rest.empty())) {
    Print(stdout, TopLevelHelp(commands));
    return FinishOutput(kExitOk);
  }
  if (name == "help") {  // `secretctl help COMMAND` is `secretctl COMMAND --help`
    name = rest[0];
    rest = {"--help"};
  }
  const auto command = std::find_if(commands.begin(), commands.end(),
                                    [&](const Command& c) { return c.spec.name == name; });
  if (command == commands.end()) {
    // Not quoted: a misplaced argument might be a value.
    Print(stderr, "secretctl: unknown command (see secretctl --help for the list)\n");
    return kExitUsage;
  }
  return RunCommand(*command, rest);
}

}  // namespace secretctl
}  // namespace secret_resolver
