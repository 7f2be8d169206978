#!/usr/bin/python3
"""A raw HTTP/2 client for the wire fault tests: it writes frames itself (hyperframe, hpack),
so that it can send what a well-behaved gRPC client never would.

Every subcommand prints JSON objects, one a line, on stdout, which the C++ test reads:

  flood   one connection (or --connections of them), --streams streams each opened with gRPC
          request headers and a partial message (a length prefix announcing more bytes than
          follow), none ever finished. Prints {"event": "sent", ...} once every stream is
          written (or the server has closed the connection), then waits, answering PINGs,
          until the server closes every connection or --hold seconds pass, and prints
          {"event": "done", ...}: streams refused (RST_STREAM REFUSED_STREAM), other resets,
          GOAWAYs, and when the server closed each connection. With --hold 0 the client closes
          at once after "sent" (the burst case). With --wait-file PATH it first waits (at most
          --hold seconds) until PATH exists, so that the test can measure the server meanwhile.
  idle    --connections connections that send the preface and SETTINGS (nothing at all with
          --no-preface) and then nothing;
          prints {"event": "done", "closed_after_s": [...]} (null for one still open after
          --hold seconds).
  call    one unary call: --path, --header NAME=VALUE (repeatable), --message HEX (the
          serialized request); --compressed-flag sets the message's compressed flag without
          sending grpc-encoding, --two-messages sends the message twice in the one request.
          Prints {"event": "done", "grpc_status": N, "grpc_message": "...", "http_status":
          "200", "reset": CODE or null, "response_bytes": N}.

Addresses: --unix PATH or --tcp HOST:PORT.
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REFUSED_STREAM = 0x7


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Connection:
    """One HTTP/2 connection: writes frames, reads and answers the server's."""

    def __init__(self, args, preface=True):
        if args.unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(args.unix)
        else:
            host, port = args.tcp.rsplit(":", 1)
            self.sock = socket.create_connection((host.strip("[]"), int(port)))
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.buffer = b""
        self.closed = False
        self.closed_at = None
        self.goaways = []  # (last_stream_id, error_code)
        self.resets = {}  # stream id -> error code
        self.headers = {}  # stream id -> list of (name, value), response headers and trailers
        self.data = {}  # stream id -> bytes
        self.ended = set()  # streams the server ended
        self.silent = not preface  # sends nothing at all, not even acknowledgements
        if preface:
            self.sock.sendall(PREFACE + SettingsFrame(0).serialize())

    def send(self, frame):
        if self.closed or self.silent:
            return False
        try:
            self.sock.sendall(frame.serialize())
            return True
        except OSError:
            self.mark_closed()
            return False

    def mark_closed(self):
        if not self.closed:
            self.closed = True
            self.closed_at = time.monotonic()

    def request_headers(self, stream_id, path, extra, end_stream=False):
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path),
                   (":authority", "localhost"), ("content-type", "application/grpc"),
                   ("te", "trailers")] + extra
        frame = HeadersFrame(stream_id, self.encoder.encode(headers))
        frame.flags.add("END_HEADERS")
        if end_stream:
            frame.flags.add("END_STREAM")
        return self.send(frame)

    def data_frame(self, stream_id, payload, end_stream=False):
        frame = DataFrame(stream_id, payload)
        if end_stream:
            frame.flags.add("END_STREAM")
        return self.send(frame)

    def pump(self, timeout):
        """Reads and handles what the server sent within `timeout` seconds."""
        if self.closed:
            return
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return
        try:
            chunk = self.sock.recv(1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            self.mark_closed()
            return
        self.buffer += chunk
        while len(self.buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
            if len(self.buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self.buffer[9:9 + length]))
            self.buffer = self.buffer[9 + length:]
            self.handle(frame)

    def handle(self, frame):
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            ack = SettingsFrame(0)
            ack.flags.add("ACK")
            self.send(ack)
        elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
            ack = PingFrame(0, frame.opaque_data)
            ack.flags.add("ACK")
            self.send(ack)
        elif isinstance(frame, GoAwayFrame):
            self.goaways.append((frame.last_stream_id, frame.error_code))
        elif isinstance(frame, RstStreamFrame):
            self.resets[frame.stream_id] = frame.error_code
        elif isinstance(frame, (HeadersFrame, ContinuationFrame)):
            block = self.decoder.decode(frame.data, raw=False)
            self.headers.setdefault(frame.stream_id, []).extend(block)
            if "END_STREAM" in frame.flags:
                self.ended.add(frame.stream_id)
        elif isinstance(frame, DataFrame):
            self.data[frame.stream_id] = self.data.get(frame.stream_id, b"") + frame.data
            if frame.flow_controlled_length:
                self.send(WindowUpdateFrame(0, frame.flow_controlled_length))
            if "END_STREAM" in frame.flags:
                self.ended.add(frame.stream_id)

    def close(self):
        self.sock.close()
        self.mark_closed()


def grpc_message(payload, compressed=False):
    return struct.pack(">BI", 1 if compressed else 0, len(payload)) + payload


def flood(args):
    start = time.monotonic()
    connections = [Connection(args) for _ in range(args.connections)]
    for c in connections:
        c.pump(1.0)  # the server's SETTINGS, acknowledged, so its stream bound is in force
    # A message announced as 1000 bytes of which 10 are sent: never complete.
    partial = struct.pack(">BI", 0, 1000) + b"\x0a" * 10
    written = 0
    for c in connections:
        stream_id = 1
        for _ in range(args.streams):
            if c.closed:
                break
            if not (c.request_headers(stream_id, args.path, [])
                    and c.data_frame(stream_id, partial)):
                break
            written += 1
            stream_id += 2
            if stream_id % 16 == 1:
                c.pump(0)
    for c in connections:
        c.pump(0.2)
    refused = sum(1 for c in connections for code in c.resets.values() if code == REFUSED_STREAM)
    emit({"event": "sent", "written": written, "refused": refused,
          "goaways": sum(len(c.goaways) for c in connections),
          "closed": sum(1 for c in connections if c.closed)})
    deadline = time.monotonic() + args.hold
    while args.wait_file and not os.path.exists(args.wait_file) and time.monotonic() < deadline:
        for c in connections:
            c.pump(0)
        time.sleep(0.05)
    if args.wait_file:
        deadline = time.monotonic()
    while time.monotonic() < deadline and not all(c.closed for c in connections):
        for c in connections:
            c.pump(0.05 if len(connections) < 20 else 0)
        if len(connections) >= 20:
            time.sleep(0.05)
    for c in connections:
        for _ in range(5):
            c.pump(0)
    refused = sum(1 for c in connections for code in c.resets.values() if code == REFUSED_STREAM)
    emit({"event": "done", "written": written, "refused": refused,
          "other_resets": sum(1 for c in connections for code in c.resets.values()
                              if code != REFUSED_STREAM),
          "goaways": sum(len(c.goaways) for c in connections),
          "closed_by_server": sum(1 for c in connections if c.closed),
          "closed_after_s": [None if c.closed_at is None else round(c.closed_at - start, 3)
                             for c in connections]})
    for c in connections:
        c.close()


def idle(args):
    start = time.monotonic()
    connections = [Connection(args, preface=not args.no_preface)
                   for _ in range(args.connections)]
    deadline = start + args.hold
    while time.monotonic() < deadline and not all(c.closed for c in connections):
        for c in connections:
            c.pump(0)
        time.sleep(0.05)
    emit({"event": "done",
          "closed_after_s": [None if c.closed_at is None else round(c.closed_at - start, 3)
                             for c in connections]})
    for c in connections:
        c.close()


def call(args):
    c = Connection(args)
    c.pump(1.0)
    extra = []
    for header in args.header:
        name, _, value = header.partition("=")
        extra.append((name, value))
    message = grpc_message(bytes.fromhex(args.message), compressed=args.compressed_flag)
    if args.two_messages:
        message += message
    c.request_headers(1, args.path, extra)
    c.data_frame(1, message, end_stream=True)
    deadline = time.monotonic() + args.hold
    while time.monotonic() < deadline and 1 not in c.ended and 1 not in c.resets and not c.closed:
        c.pump(0.1)
    headers = dict(c.headers.get(1, []))
    status = headers.get("grpc-status")
    emit({"event": "done", "http_status": headers.get(":status"),
          "grpc_status": None if status is None else int(status),
          "grpc_message": headers.get("grpc-message", ""), "reset": c.resets.get(1),
          "response_bytes": len(c.data.get(1, b""))})
    c.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["flood", "idle", "call"])
    parser.add_argument("--unix")
    parser.add_argument("--tcp")
    parser.add_argument("--path", default="/secretresolver.v1.SecretResolver/ResolveSecrets")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--streams", type=int, default=10000)
    parser.add_argument("--hold", type=float, default=10.0)
    parser.add_argument("--wait-file")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--message", default="")
    parser.add_argument("--compressed-flag", action="store_true")
    parser.add_argument("--two-messages", action="store_true")
    parser.add_argument("--no-preface", action="store_true")
    args = parser.parse_args()
    if bool(args.unix) == bool(args.tcp):
        parser.error("exactly one of --unix and --tcp")
    {"flood": flood, "idle": idle, "call": call}[args.command](args)


if __name__ == "__main__":
    main()
