"""MCP over stdio, driven by the official Python SDK: starts `horace mcp` as MCP clients
start local servers, lists the tools, calls every one with good and bad input.

usage: client_stdio.py HORACE_BIN SOCKET FILES_ROOT PREFIX
Prints one JSON line of ids for the Rust test; exits 1 on a failed check.
"""

import json
import subprocess
import sys

from mcp import StdioServerParameters
from mcp.client.client import Client

import checks


def raw_robustness(horace, socket):
    """Malformed JSON-RPC is a protocol error and the server keeps serving the session."""
    p = subprocess.Popen([horace, "--socket", socket, "mcp"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def send(obj):
        line = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        p.stdin.write(line + b"\n")
        p.stdin.flush()

    def recv():
        line = p.stdout.readline()
        assert line, f"server closed stdout; stderr: {p.stderr.read().decode()}"
        return json.loads(line)

    # The 2026 protocol's probe before the handshake: refused, the session goes on.
    send({"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {}})
    probe = recv()
    assert probe["id"] == 0 and probe["error"]["code"] == -32601, probe
    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}})
    init = recv()
    assert init["id"] == 1 and "result" in init, init
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send(b"{not json")
    send({"jsonrpc": "2.0", "id": 2, "method": "no/such/method"})
    answers = {}
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
          "params": {"name": "horace_get_status", "arguments": {}}})
    while 3 not in answers:
        m = recv()
        answers[m.get("id")] = m
    assert "error" in answers[2], answers
    assert answers[3]["result"]["isError"] is False, answers[3]
    p.stdin.close()
    assert p.wait(timeout=10) == 0, f"exit {p.returncode}: {p.stderr.read().decode()}"
    return sorted(k for k in answers if k is not None)


async def main():
    horace, socket, root, prefix = sys.argv[1:5]
    params = StdioServerParameters(command=horace, args=["--socket", socket, "mcp",
                                                         "--container-prefix", prefix])
    async with Client(params) as c:
        assert c.server_info.name == "horace", c.server_info
        n = await checks.check_tools(c)
        run = checks.Run(c, root, prefix)
        a = await checks.exercise_reads(run)
        ids = await checks.exercise_writes(run, a)
        await run.ok("horace_get_status")
    ids["tools"] = n
    ids["calls"] = run.calls
    ids["raw"] = raw_robustness(horace, socket)
    checks.report(ids)


if __name__ == "__main__":
    checks.run_main(main)
