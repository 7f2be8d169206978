// secretctl's workflow-side commands: resolve and render call a running sidecar as a workflow
// service does (sidecar_client.h) and print what it returned, values included where asked
// (resolve --reveal) or needed (render); check lints a workflow definition's secret references
// offline (workflow_check.h), calling no sidecar; redact is a filter from standard input to
// standard output over the sidecar's RedactLogs.
//
// Thread safety: each Command is built fresh; running one touches the network, files and the
// standard streams, so commands run one at a time, from main.
#ifndef SECRET_RESOLVER_TOOLS_SECRETCTL_SIDECAR_COMMANDS_H_
#define SECRET_RESOLVER_TOOLS_SECRETCTL_SIDECAR_COMMANDS_H_

#include "tools/secretctl/command.h"

namespace secret_resolver {
namespace secretctl {

Command ResolveCommand();
Command RenderCommand();
Command CheckCommand();
Command RedactCommand();

}  // namespace secretctl
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TOOLS_SECRETCTL_SIDECAR_COMMANDS_H_
