#!/usr/bin/python3
"""Opens N idle HTTP/2 connections to a gRPC server and holds them (tests/bench/sidecar/run.sh).

  idle_connections.py --target unix:/path/to.sock|127.0.0.1:PORT --connections N

Each connection sends the HTTP/2 client preface and an empty SETTINGS frame, acknowledges the
server's SETTINGS (so the server keeps it) and answers its PINGs, and then sends nothing: no
stream is ever opened. Prints "open N" once every connection has had its SETTINGS acknowledged,
then holds them until stdin closes, and exits. Connections the server closes are counted and
reported on stderr.
"""
import argparse
import selectors
import socket
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 0x4, 0x6, 0x7
ACK = 0x1


def frame(kind, flags, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + b"\0\0\0\0" + payload


def connect(target):
    if target.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(target[len("unix:"):])
    else:
        host, port = target.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
    sock.sendall(PREFACE + frame(SETTINGS, 0))
    sock.setblocking(False)
    return sock


class Connection:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.settled = False  # the server's SETTINGS acknowledged

    def feed(self, data):
        """Handles whole frames in `data`; returns False once the server has closed."""
        self.buffer += data
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                break
            kind, flags = self.buffer[3], self.buffer[4]
            payload = self.buffer[9:9 + length]
            self.buffer = self.buffer[9 + length:]
            if kind == SETTINGS and not flags & ACK:
                self.sock.sendall(frame(SETTINGS, ACK))
                self.settled = True
            elif kind == PING and not flags & ACK:
                self.sock.sendall(frame(PING, ACK, payload))
            elif kind == GOAWAY:
                return False
        return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--connections", type=int, required=True)
    args = parser.parse_args()
    selector = selectors.DefaultSelector()
    connections = []
    closed = 0
    for _ in range(args.connections):
        conn = Connection(connect(args.target))
        connections.append(conn)
        selector.register(conn.sock, selectors.EVENT_READ, conn)

    def poll(timeout):
        nonlocal closed
        for key, _ in selector.select(timeout):
            if key.fileobj is sys.stdin:
                return False
            conn = key.data
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data or not conn.feed(data):
                selector.unregister(conn.sock)
                conn.sock.close()
                closed += 1
        return True

    while sum(c.settled for c in connections) + closed < args.connections:
        poll(1.0)
    print(f"open {args.connections - closed}", flush=True)
    if closed:
        print(f"idle_connections.py: the server closed {closed} connections", file=sys.stderr)
    selector.register(sys.stdin, selectors.EVENT_READ, None)
    while poll(None):
        pass


if __name__ == "__main__":
    main()
