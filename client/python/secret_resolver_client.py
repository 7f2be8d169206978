"""A small Python client for the secret-resolver sidecar (contract.md section 2).

It proves the gRPC API works for callers that are not written in C++, and is an example of
one. It needs Debian's python3-grpcio and python3-grpc-tools (run it with /usr/bin/python3)
and generates its stubs from the project's .proto files at run time, so nothing generated is
checked in:

    import secret_resolver_client as src

    stubs = src.load_stubs("proto", "/tmp/stubs")          # runs grpc_tools.protoc once
    client = src.SecretResolverClient(
        "unix:/run/secret-resolver/resolver.sock",
        token_provider=lambda: open("/var/run/secrets/token").read().strip(),
        stubs=stubs)
    results = client.resolve("stacks-123", {"api-token": "secret://workflows/http/auth-token"})
    api = results["api-token"]
    if isinstance(api, src.RefError):
        ...                                                  # api.code, api.message
    else:
        use(api.value)                                       # bytes; api.placeholder for logs

    # Redaction inside the sidecar (RedactLogs): the values never reach this process.
    for clean in client.redact("stacks-123", {"api-token": "secret://workflows/http/auth-token"},
                               iter_log_chunks()):               # any iterable of bytes
        sys.stdout.buffer.write(clean)

Behaviour, as the C++ client (client/secret_resolver_client.h):
  * the token provider is called for every attempt, and the token goes in the `x-access-token`
    metadata entry (or `authorization: Bearer`, with token_header="authorization");
  * one deadline (`timeout`, seconds) covers the whole call; only UNAVAILABLE is retried, with
    exponential backoff and full jitter, and never past the deadline;
  * whole-call errors raise ResolveError with the gRPC status code; per-reference errors come
    back as RefError values in the result.
  * redact() streams text through the sidecar's RedactLogs and yields it redacted, in order; a
    value split across chunks is still redacted, and the last bytes come once the input ends. A
    reference that would not resolve (NOT_FOUND, PERMISSION_DENIED, ...) refuses the whole
    stream: ResolveError. No deadline and no retry: a log stream lasts as long as its step.

Secret values are Python `bytes`, which cannot be wiped from memory; ResolvedSecret's repr
never shows them. Keep them out of logs and drop references to them early.

Run as a script it resolves references and prints their metadata (never a value) as JSON, or,
with --redact, redacts standard input to standard output; the integration test
tests/client/python_client_test.cc drives it both ways.
"""

import argparse
import dataclasses
import importlib
import json
import os
import random
import sys
import tempfile
import time
from typing import Callable, Dict, Iterable, Iterator, Optional, Union

import grpc


def generate_stubs(proto_root: str, out_dir: str) -> None:
    """Generates the Python messages and gRPC stubs of the API into out_dir.

    proto_root is the directory that holds secretresolver/v1/*.proto (the repository's proto/).
    Raises RuntimeError if protoc fails.
    """
    import grpc_tools
    from grpc_tools import protoc

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = [
        "grpc_tools.protoc",
        "-I" + proto_root,
        "-I" + well_known,
        "--python_out=" + out_dir,
        "--grpc_python_out=" + out_dir,
        "secretresolver/v1/options.proto",
        "secretresolver/v1/resolver.proto",
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("grpc_tools.protoc failed on " + proto_root)


@dataclasses.dataclass(frozen=True)
class Stubs:
    """The generated modules: resolver_pb2 (messages) and resolver_pb2_grpc (the stub)."""

    pb2: object
    pb2_grpc: object


def load_stubs(proto_root: str, out_dir: str) -> Stubs:
    """Generates the stubs into out_dir (see generate_stubs) and imports them."""
    generate_stubs(proto_root, out_dir)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    return Stubs(
        pb2=importlib.import_module("secretresolver.v1.resolver_pb2"),
        pb2_grpc=importlib.import_module("secretresolver.v1.resolver_pb2_grpc"),
    )


@dataclasses.dataclass(frozen=True)
class ResolvedSecret:
    """One resolved reference. `value` is secret; the repr leaves it out."""

    value: bytes = dataclasses.field(repr=False)
    name: str
    version: int
    placeholder: str
    fingerprint: str
    stale: bool
    superseded: bool = False


@dataclasses.dataclass(frozen=True)
class CheckedSecret:
    """A reference the caller may resolve (from check): the secret's name and current version."""

    name: str
    version: int


@dataclasses.dataclass(frozen=True)
class RefError:
    """Why one reference did not resolve: a gRPC status code and a message naming the ref."""

    code: grpc.StatusCode
    message: str


class ResolveError(Exception):
    """The whole call failed (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, ...)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


_CODES_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


def _run_metadata(run_id: str, step_id: str, traceparent: str):
    """The run-context metadata entries that are set."""
    pairs = (("x-workflow-run-id", run_id), ("x-workflow-step-id", step_id),
             ("traceparent", traceparent))
    return tuple((k, v) for k, v in pairs if v)


class SecretResolverClient:
    """A client of one sidecar. Safe to share between threads (as gRPC channels are)."""

    def __init__(
        self,
        target: str,
        token_provider: Callable[[], str],
        stubs: Stubs,
        *,
        timeout: float = 5.0,
        root_ca_file: Optional[str] = None,
        cert_chain_file: Optional[str] = None,
        private_key_file: Optional[str] = None,
        token_header: str = "x-access-token",
        max_attempts: int = 5,
        initial_backoff: float = 0.05,
        max_backoff: float = 2.0,
        multiplier: float = 2.0,
    ):
        """Connects lazily to target: "unix:/path", "host:port", ...

        root_ca_file turns on TLS; cert_chain_file and private_key_file (both or neither) add a
        client certificate (mTLS). token_header is "x-access-token" or "authorization".
        """
        if token_header not in ("x-access-token", "authorization"):
            raise ValueError("token_header must be x-access-token or authorization")
        if (cert_chain_file is None) != (private_key_file is None):
            raise ValueError("cert_chain_file and private_key_file go together")
        if max_attempts < 1 or timeout <= 0:
            raise ValueError("max_attempts must be >= 1 and timeout > 0")
        if root_ca_file is None:
            self._channel = grpc.insecure_channel(target)
        else:
            def read(path):
                with open(path, "rb") as f:
                    return f.read()

            credentials = grpc.ssl_channel_credentials(
                root_certificates=read(root_ca_file),
                private_key=read(private_key_file) if private_key_file else None,
                certificate_chain=read(cert_chain_file) if cert_chain_file else None,
            )
            self._channel = grpc.secure_channel(target, credentials)
        self._stubs = stubs
        self._stub = stubs.pb2_grpc.SecretResolverStub(self._channel)
        self._token_provider = token_provider
        self._token_header = token_header
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._multiplier = multiplier

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def resolve(
        self, stack: str, refs: Dict[str, str], timeout: Optional[float] = None, *,
        versions: Optional[Dict[str, int]] = None, run_id: str = "", step_id: str = "",
        traceparent: str = "",
    ) -> Dict[str, Union[ResolvedSecret, RefError]]:
        """Resolves refs (ref key -> "secret://name") for stack.

        versions pins ref keys to versions (ref key -> version, as a run's earlier step got
        them); run_id, step_id and traceparent, when given, go to the sidecar's audit log only.
        Returns one entry per ref key: a ResolvedSecret or a RefError. Raises ResolveError for
        a whole-call failure, DEADLINE_EXCEEDED when the deadline passed, and UNAVAILABLE when
        the sidecar stayed unreachable.
        """
        request = self._stubs.pb2.ResolveSecretsRequest(stack=stack)
        for key, uri in refs.items():
            request.refs[key] = uri
        for key, version in (versions or {}).items():
            request.versions[key] = version
        response = self._call(self._stub.ResolveSecrets, request, timeout,
                              _run_metadata(run_id, step_id, traceparent))
        return self._results(refs, response)

    def check(
        self, stack: str, refs: Dict[str, str], timeout: Optional[float] = None, *,
        run_id: str = "", step_id: str = "", traceparent: str = "",
    ) -> Dict[str, Union[CheckedSecret, RefError]]:
        """The sidecar's dry run of resolve (CheckReferences): no value is read anywhere.

        Returns one entry per ref key: a CheckedSecret if the caller may resolve it, otherwise
        the RefError resolve would give. Raises ResolveError as resolve does.
        """
        request = self._stubs.pb2.CheckReferencesRequest(stack=stack)
        for key, uri in refs.items():
            request.refs[key] = uri
        response = self._call(self._stub.CheckReferences, request, timeout,
                              _run_metadata(run_id, step_id, traceparent))
        results = {}
        for key in refs:
            if key not in response.results:
                results[key] = RefError(grpc.StatusCode.INTERNAL,
                                        f'ref "{key}": the sidecar returned no result for it')
                continue
            result = response.results[key]
            if result.WhichOneof("result") == "secret":
                results[key] = CheckedSecret(name=result.secret.name,
                                             version=result.secret.version)
            else:
                code = _CODES_BY_NUMBER.get(result.error.code, grpc.StatusCode.UNKNOWN)
                results[key] = RefError(code, f'ref "{key}": {result.error.message}')
        return results

    def _call(self, method, request, timeout, extra_metadata):
        """Calls method with a fresh token per attempt, retrying UNAVAILABLE with backoff."""
        deadline = time.monotonic() + (timeout if timeout is not None else self._timeout)
        attempt = 1
        while True:
            token = self._token_provider()
            if not token:
                raise ResolveError(grpc.StatusCode.UNAUTHENTICATED,
                                   "the token provider returned an empty token")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResolveError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                   f"the deadline passed before attempt {attempt}")
            try:
                return method(request, timeout=remaining,
                              metadata=self._metadata(token) + extra_metadata)
            except grpc.RpcError as e:
                code, details = e.code(), e.details() or ""
            if code != grpc.StatusCode.UNAVAILABLE:
                raise ResolveError(code, details)
            if attempt >= self._max_attempts:
                raise ResolveError(code, f"{details} (gave up after {attempt} attempts)")
            ceiling = min(self._max_backoff,
                          self._initial_backoff * self._multiplier ** (attempt - 1))
            wait = random.uniform(0, ceiling)  # full jitter
            if time.monotonic() + wait >= deadline:
                raise ResolveError(code, f"{details} (gave up after {attempt} attempts: the "
                                         "next retry would pass the deadline)")
            time.sleep(wait)
            attempt += 1

    # The most bytes one RedactLogs request carries; longer chunks are split (the sidecar's
    # default limits.max_message_bytes is 1 MiB).
    MAX_REDACT_CHUNK_BYTES = 256 * 1024

    def redact(self, stack: str, refs: Dict[str, str],
               chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Redacts chunks (log text, bytes) with the values of refs, inside the sidecar.

        Yields the redacted text in order, in pieces that need not match the input's. Raises
        ResolveError when the sidecar refuses the stream (the errors of resolve, where one
        reference's error refuses it all, or RESOURCE_EXHAUSTED past limits.max_redact_streams)
        or the stream fails.
        """
        token = self._token_provider()
        if not token:
            raise ResolveError(grpc.StatusCode.UNAUTHENTICATED,
                               "the token provider returned an empty token")
        pb2 = self._stubs.pb2
        start = pb2.RedactLogsStart(stack=stack)
        for key, uri in refs.items():
            start.refs[key] = uri

        def requests():
            yield pb2.RedactLogsRequest(start=start)
            size = self.MAX_REDACT_CHUNK_BYTES
            for chunk in chunks:
                for at in range(0, len(chunk), size):
                    yield pb2.RedactLogsRequest(chunk=bytes(chunk[at:at + size]))

        try:
            for response in self._stub.RedactLogs(requests(), metadata=self._metadata(token)):
                if response.WhichOneof("kind") == "chunk" and response.chunk:
                    yield response.chunk
        except grpc.RpcError as e:
            raise ResolveError(e.code(), e.details() or "") from None

    def _metadata(self, token):
        if self._token_header == "x-access-token":
            return (("x-access-token", token),)
        return (("authorization", "Bearer " + token),)

    @staticmethod
    def _results(refs, response):
        results = {}
        for key in refs:
            if key not in response.results:
                results[key] = RefError(grpc.StatusCode.INTERNAL,
                                        f'ref "{key}": the sidecar returned no result for it')
                continue
            result = response.results[key]
            which = result.WhichOneof("result")
            if which == "secret":
                s = result.secret
                results[key] = ResolvedSecret(
                    value=s.value, name=s.name, version=s.version,
                    placeholder=s.redaction.placeholder,
                    fingerprint=s.redaction.fingerprint, stale=s.stale,
                    superseded=s.superseded)
            elif which == "error":
                code = _CODES_BY_NUMBER.get(result.error.code, grpc.StatusCode.UNKNOWN)
                results[key] = RefError(code, f'ref "{key}": {result.error.message}')
            else:
                results[key] = RefError(grpc.StatusCode.INTERNAL,
                                        f'ref "{key}": neither a secret nor an error')
        return results


def _redact(client, stack, refs, chunk_bytes) -> int:
    def stdin_chunks():
        while True:
            chunk = os.read(sys.stdin.fileno(), chunk_bytes)
            if not chunk:
                return
            yield chunk

    try:
        for clean in client.redact(stack, refs, stdin_chunks()):
            sys.stdout.buffer.write(clean)
            sys.stdout.buffer.flush()
    except ResolveError as e:
        print(json.dumps({"error": {"code": e.code.name, "message": e.message}}),
              file=sys.stderr)
        return 3
    return 0


def _main(argv) -> int:
    parser = argparse.ArgumentParser(
        description="Resolve secret references through a sidecar and print their metadata "
                    "(never the values) as JSON.")
    parser.add_argument("--proto-dir", required=True,
                        help="the directory holding secretresolver/v1/*.proto")
    parser.add_argument("--target", required=True, help="unix:/path or host:port")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--ref", action="append", required=True, metavar="KEY=secret://NAME")
    parser.add_argument("--token-file", required=True,
                        help="a file holding the access token (never an argument)")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--pin", action="append", default=[], metavar="KEY=VERSION",
                        help="resolve ref KEY at exactly VERSION")
    parser.add_argument("--run-id", default="", help="the workflow run, for the audit log")
    parser.add_argument("--step-id", default="", help="the workflow step, for the audit log")
    parser.add_argument("--check", action="store_true",
                        help="check the references (CheckReferences) instead of resolving")
    parser.add_argument("--redact", action="store_true",
                        help="redact standard input to standard output through RedactLogs")
    parser.add_argument("--chunk-bytes", type=int, default=65536,
                        help="with --redact: the most bytes read from standard input at once")
    args = parser.parse_args(argv)

    refs = {}
    for i, ref in enumerate(args.ref, 1):
        key, sep, uri = ref.partition("=")
        if not sep:
            print(f"--ref #{i}: expected KEY=secret://NAME", file=sys.stderr)
            return 2
        refs[key] = uri
    versions = {}
    for i, pin in enumerate(args.pin, 1):
        key, sep, version = pin.partition("=")
        if not sep or not version.isdigit() or int(version) < 1:
            print(f"--pin #{i}: expected KEY=VERSION, VERSION at least 1", file=sys.stderr)
            return 2
        versions[key] = int(version)

    def token():
        with open(args.token_file) as f:
            return f.read().strip()

    with tempfile.TemporaryDirectory(prefix="sr-stubs-") as out_dir:
        stubs = load_stubs(args.proto_dir, out_dir)
        with SecretResolverClient(args.target, token, stubs, timeout=args.timeout) as client:
            if args.redact:
                return _redact(client, args.stack, refs, args.chunk_bytes)
            try:
                if args.check:
                    results = client.check(args.stack, refs, run_id=args.run_id,
                                           step_id=args.step_id)
                else:
                    results = client.resolve(args.stack, refs, versions=versions,
                                             run_id=args.run_id, step_id=args.step_id)
            except ResolveError as e:
                print(json.dumps({"error": {"code": e.code.name, "message": e.message}}))
                return 3
    out = {}
    for key, r in results.items():
        if isinstance(r, RefError):
            out[key] = {"error": {"code": r.code.name, "message": r.message}}
        elif isinstance(r, CheckedSecret):
            out[key] = {"name": r.name, "version": r.version}
        else:
            out[key] = {"name": r.name, "version": r.version, "placeholder": r.placeholder,
                        "fingerprint": r.fingerprint, "stale": r.stale,
                        "superseded": r.superseded,
                        "value_bytes": len(r.value)}
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
