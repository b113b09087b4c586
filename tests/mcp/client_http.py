"""MCP over Streamable HTTP, driven by the official Python SDK against
`horace mcp --listen`: no token and a wrong token get 401; a write token may call every
tool (the same checks as over stdio); a read token may call the read tools and is refused
every write with PermissionDenied.

usage: client_http.py URL TOKEN ROLE FILES_ROOT PREFIX   (ROLE: writer | reader)
Prints one JSON line for the Rust test; exits 1 on a failed check.
"""

import sys

import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

import checks

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "raw", "version": "0"}}}
ACCEPT = {"Accept": "application/json, text/event-stream"}


async def unauthorized(url, token):
    """Every request needs the token: none, a wrong one, another scheme -> 401."""
    async with httpx2.AsyncClient() as h:
        codes = []
        for auth in [None, "Bearer " + "x" * 40, "Bearer " + token + "x", "Basic " + token]:
            headers = dict(ACCEPT)
            if auth:
                headers["Authorization"] = auth
            r = await h.post(url, json=INIT, headers=headers)
            codes.append(r.status_code)
            assert r.status_code == 401, (auth and auth[:12], r.status_code, r.text)
            assert r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers
        r = await h.post(url.replace("/mcp", "/other"), json=INIT,
                         headers={**ACCEPT, "Authorization": "Bearer " + token})
        assert r.status_code == 404, r.status_code
        # The SDK client without a token fails to connect.
        try:
            async with Client(url) as c:
                await c.list_tools()
            raise AssertionError("connected without a token")
        except AssertionError:
            raise
        except Exception:  # noqa: BLE001 - any refusal is right
            pass
    return codes


async def main():
    url, token, role, root, prefix = sys.argv[1:6]
    codes = await unauthorized(url, token)
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(url, http_client=http)) as c:
        assert c.server_info.name == "horace", c.server_info
        n = await checks.check_tools(c)
        run = checks.Run(c, root, prefix)
        if role == "writer":
            a = await checks.exercise_reads(run)
            ids = await checks.exercise_writes(run, a)
        else:
            ids = await checks.exercise_reader(run)
            await checks.exercise_reads(run)
    ids["tools"] = n
    ids["calls"] = run.calls
    ids["unauthorized"] = codes
    checks.report(ids)


if __name__ == "__main__":
    checks.run_main(main)
