#!/usr/bin/env python3
"""Python's grpcio-health-checking against a lifecycle probe port: a client
nobody in this project wrote, driven by tests/tests/grpc_python*.rs through
lifecycle_tests::python. Each command prints one JSON document on stdout;
progress goes to stderr.

  health_client.py check ADDR NAME...
      {"NAME": "SERVING" | "NOT_SERVING" | ... | "code:NOT_FOUND", ...}
      one Check per name; a failed call is its status code.
  health_client.py list ADDR
      {"NAME": "SERVING", ...}: List's statuses, or {"code:...": ""}.
  health_client.py watch-stop PID NAME@ADDR...
      opens a Watch on NAME at ADDR for each argument (one channel per
      address; NAME may be empty: @ADDR), waits for each one's first
      message, sends SIGTERM to PID, and follows every stream until it
      ends: {"NAME@ADDR": {"events": [["SERVING", MS], ...],
      "end": ["OK", MS, DETAILS]}, ...}
      where MS is milliseconds since the kill() (negative before it), on a
      monotonic clock read in the thread that received the message, and the
      end is what grpcio reports: the status code's name (OK when the
      server ended the stream with status OK) and its details.

Needs the packages `grpcio` and `grpcio-health-checking` (scripts/test puts
them in a venv of its own and names its interpreter in LIFECYCLE_PYTHON).
"""

import json
import os
import signal
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

STATUS = health_pb2.HealthCheckResponse.ServingStatus
# A unary call's deadline: far beyond the contract's (a check's timeout plus
# 50 ms); a hang shows as DEADLINE_EXCEEDED, never as a stuck test.
CALL_TIMEOUT_S = 10
# How long watch-stop waits for anything: its first messages, the streams'
# ends. The caller's own deadline is longer, so a hang is reported here.
WATCH_DEADLINE_S = 30


def channel(addr):
    # Plaintext HTTP/2 with prior knowledge, as the kubelet's grpc probes;
    # no proxy from the environment.
    return grpc.insecure_channel(addr, options=[("grpc.enable_http_proxy", 0)])


def status_name(value):
    return STATUS.Name(value)


def check(addr, names):
    stub = health_pb2_grpc.HealthStub(channel(addr))
    out = {}
    for name in names:
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=CALL_TIMEOUT_S)
            out[name] = status_name(answer.status)
        except grpc.RpcError as error:
            out[name] = "code:" + error.code().name
    return out


def list_statuses(addr):
    stub = health_pb2_grpc.HealthStub(channel(addr))
    try:
        answer = stub.List(health_pb2.HealthListRequest(), timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        return {"code:" + error.code().name: error.details() or ""}
    return {name: status_name(response.status) for name, response in answer.statuses.items()}


def watch_stop(pid, targets):
    stubs = {}
    for target in targets:
        addr = target.rpartition("@")[2]
        if addr not in stubs:
            stubs[addr] = health_pb2_grpc.HealthStub(channel(addr))
    lock = threading.Lock()
    events = {target: [] for target in targets}
    ends = {}
    first = {target: threading.Event() for target in targets}
    killed_at = [None]

    def follow(target):
        name, _, addr = target.rpartition("@")
        request = health_pb2.HealthCheckRequest(service=name)
        stream = stubs[addr].Watch(request, timeout=WATCH_DEADLINE_S)
        try:
            for message in stream:
                now = time.monotonic()
                with lock:
                    events[target].append([status_name(message.status), now])
                first[target].set()
            # The stream ended with a status: grpcio's own account of it.
            code, details = stream.code().name, stream.details() or ""
        except grpc.RpcError as error:
            code, details = error.code().name, error.details() or ""
        now = time.monotonic()
        print(f"watch {target!r}: ended with {code}: {details!r}", file=sys.stderr)
        with lock:
            ends[target] = [code, now, details]
        first[target].set()

    threads = [
        threading.Thread(target=follow, args=(target,), daemon=True) for target in targets
    ]
    for thread in threads:
        thread.start()
    for target in targets:
        if not first[target].wait(WATCH_DEADLINE_S):
            raise SystemExit(f"watch {target!r}: no first message within {WATCH_DEADLINE_S} s")
    killed_at[0] = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    print(f"SIGTERM sent to {pid}", file=sys.stderr)
    for thread in threads:
        thread.join(WATCH_DEADLINE_S)

    def ms(at):
        return round((at - killed_at[0]) * 1000.0, 2)

    with lock:
        return {
            target: {
                "events": [[status, ms(at)] for status, at in events[target]],
                "end": [ends[target][0], ms(ends[target][1]), ends[target][2]]
                if target in ends
                else None,
            }
            for target in targets
        }


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    command = argv[1]
    if command == "check":
        result = check(argv[2], argv[3:])
    elif command == "list":
        result = list_statuses(argv[2])
    elif command == "watch-stop":
        result = watch_stop(int(argv[2]), argv[3:])
    else:
        raise SystemExit(f"unknown command {command!r}\n{__doc__}")
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
