#!/usr/bin/python3
"""Hostile wire input against a running sidecar (the fault suite, docs/faults.md).

Each case sends what no gRPC client would and checks that the sidecar refuses it (closes the
connection, sends GOAWAY or RST_STREAM, or ends the call with a non-OK grpc-status) within
--timeout seconds; then hundreds of idle connections are opened and held for --hold seconds,
with the marker file --ready touched once they are all open, so the test can make a normal call
meanwhile. Prints one line per case; exits 0 if every case was refused, 1 otherwise.

  hostile_wire.py --unix PATH --tcp HOST:PORT --ready FILE [--token-file F] [--hold S]
                  [--idle N] [--timeout S]

With --token-file the calls carry that valid token, so they reach the message parsing past
authentication. Needs python3-h2 (tools/dev setup installs it).
"""
import argparse
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events

METHOD = "/secretresolver.v1.SecretResolver/ResolveSecrets"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def connect(args, use_tcp):
    if use_tcp:
        host, port = args.tcp.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=args.timeout)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(args.timeout)
        sock.connect(args.unix)
    return sock


def read_until_closed(sock, timeout):
    """Reads until EOF or an error; returns the bytes read, or None if still open at timeout."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def frame_types(data):
    """The types of the HTTP/2 frames in `data` (server bytes after its preface)."""
    types, i = [], 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i:i + 3], "big")
        types.append(data[i + 3])
        i += 9 + length
    return types


GOAWAY, RST_STREAM = 7, 3


def case_garbage_preface(args, use_tcp):
    sock = connect(args, use_tcp)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)
    data = read_until_closed(sock, args.timeout)
    sock.close()
    return data is not None, "closed" if data is not None else "left open"


def case_bad_frame(args, use_tcp):
    """A valid preface and SETTINGS, then a DATA frame on stream 0 and a frame longer than the
    default maximum frame size: a connection error (GOAWAY, then close)."""
    sock = connect(args, use_tcp)
    settings = struct.pack(">I", 0)[1:] + bytes([4, 0]) + struct.pack(">I", 0)
    bad_data = struct.pack(">I", 4)[1:] + bytes([0, 0]) + struct.pack(">I", 0) + b"abcd"
    huge = struct.pack(">I", 1 << 20)[1:] + bytes([0, 0]) + struct.pack(">I", 1)
    sock.sendall(PREFACE + settings + bad_data + huge + b"\0" * 4096)
    data = read_until_closed(sock, args.timeout)
    sock.close()
    if data is None:
        return False, "left open"
    return True, "closed, frames %s" % sorted(set(frame_types(data)))


class H2Client:
    def __init__(self, args, use_tcp):
        self.sock = connect(args, use_tcp)
        self.timeout = args.timeout
        self.token = args.token
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                           validate_outbound_headers=False,
                                           normalize_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def headers(self, extra=()):
        return [(":method", "POST"), (":scheme", "http"), (":path", METHOD),
                (":authority", "localhost"), ("content-type", "application/grpc"),
                ("te", "trailers")] + self.auth() + list(extra)

    def auth(self):
        return [("authorization", "Bearer " + self.token)] if self.token else []

    def outcome(self, stream_id):
        """Waits for the stream's end: 'grpc-status N', 'reset', 'goaway' or 'closed'."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                return "closed"
            if not data:
                return "closed"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                    return "reset"
                if isinstance(event, h2.events.ConnectionTerminated):
                    return "goaway"
                if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)) \
                        and event.stream_id == stream_id:
                    for name, value in event.headers:
                        if name == "grpc-status":
                            return "grpc-status " + value
            self.flush()
        return None

    def close(self):
        self.sock.close()


def refused(outcome):
    return outcome is not None and outcome != "grpc-status 0"


def case_bad_length_prefix(args, use_tcp):
    """A gRPC message whose 5-byte prefix claims 4 GiB, then the stream ends."""
    client = H2Client(args, use_tcp)
    stream = client.conn.get_next_available_stream_id()
    client.conn.send_headers(stream, client.headers())
    client.conn.send_data(stream, b"\0" + struct.pack(">I", 0xFFFFFFFF) + b"xx", end_stream=True)
    client.flush()
    outcome = client.outcome(stream)
    client.close()
    return refused(outcome), str(outcome)


def case_truncated_message(args, use_tcp):
    """A prefix claiming 100 bytes followed by 3, then the stream ends."""
    client = H2Client(args, use_tcp)
    stream = client.conn.get_next_available_stream_id()
    client.conn.send_headers(stream, client.headers())
    client.conn.send_data(stream, b"\0" + struct.pack(">I", 100) + b"abc", end_stream=True)
    client.flush()
    outcome = client.outcome(stream)
    client.close()
    return refused(outcome), str(outcome)


def case_big_metadata(args, use_tcp):
    """256 KiB of metadata in one request (far above gRPC's limits)."""
    client = H2Client(args, use_tcp)
    stream = client.conn.get_next_available_stream_id()
    # Without Huffman coding: hpack's pure-Python coder takes half a minute on 256 KiB.
    encode = client.conn.encoder.encode
    client.conn.encoder.encode = lambda headers, huffman=False: encode(headers, huffman=False)
    client.conn.send_headers(stream, client.headers([("x-big", "a" * (256 * 1024))]))
    client.conn.send_data(stream, b"\0\0\0\0\0", end_stream=True)
    try:
        client.flush()
    except OSError:
        return True, "closed while sending"
    outcome = client.outcome(stream)
    client.close()
    return refused(outcome), str(outcome)


def hold_idle(args):
    """Opens --idle connections on each transport (half of them send a preface and SETTINGS,
    half nothing), touches --ready, holds them for --hold seconds."""
    held = []
    for use_tcp in (False, True):
        for i in range(args.idle):
            sock = connect(args, use_tcp)
            if i % 2 == 0:
                sock.sendall(PREFACE + b"\0\0\0\4\0\0\0\0\0")
            held.append(sock)
    with open(args.ready, "w") as ready:
        ready.write("%d\n" % len(held))
    time.sleep(args.hold)
    for sock in held:
        sock.close()
    return len(held)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--unix", required=True)
    parser.add_argument("--tcp", required=True)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--hold", type=float, default=3)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=5)
    parser.add_argument("--token-file")
    args = parser.parse_args()
    args.token = ""
    if args.token_file:
        with open(args.token_file) as token:
            args.token = token.read().strip()
    cases = [case_garbage_preface, case_bad_frame, case_bad_length_prefix,
             case_truncated_message, case_big_metadata]
    failed = 0
    for case in cases:
        for use_tcp in (False, True):
            started = time.monotonic()
            try:
                ok, what = case(args, use_tcp)
            except OSError as error:  # a refused or reset connection is a refusal too
                ok, what = True, "connection error: %s" % type(error).__name__
            took = time.monotonic() - started
            print("%-26s %-4s %-8s %s (%.0f ms)" % (case.__name__[5:], "tcp" if use_tcp else "unix",
                                                   "refused" if ok else "ACCEPTED", what,
                                                   took * 1000))
            failed += 0 if ok else 1
    print("idle connections held: %d" % hold_idle(args))
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
