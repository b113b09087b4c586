"""Checks shared by the MCP tests: drive every Horace tool through the official Python MCP
SDK, with good and bad input, and compare the answers with the files on disk.

The Rust test (tests/tests/reliability/mcp.rs) prepares the files tree and the watcher,
runs one of the client_*.py scripts, and checks the catalog afterwards.
"""

import hashlib
import json
import os
import sys

from mcp.shared.exceptions import MCPError

TOOLS = {
    "horace_register_file": ["file_path", "metadata"],
    "horace_search_files": ["query", "limit", "offset", "sort_by", "order"],
    "horace_get_file_info": ["file_id", "include_versions"],
    "horace_create_collection": ["name", "description", "file_ids", "metadata"],
    "horace_list_collections": ["limit", "offset"],
    "horace_update_file": ["file_id", "metadata", "check_for_changes"],
    "horace_restore_version": ["file_id", "version"],
    "horace_list_versions": ["file_id"],
    "horace_find_duplicates": ["min_size", "limit", "offset"],
    "horace_list_snapshots": [],
    "horace_get_status": [],
    "horace_sync": [],
}
WRITE_TOOLS = {"horace_register_file", "horace_create_collection", "horace_update_file",
               "horace_restore_version"}


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Run:
    def __init__(self, client, root, prefix):
        self.c = client
        self.root = root
        self.prefix = prefix.rstrip("/")
        self.calls = 0

    async def ok(self, name, args=None):
        self.calls += 1
        r = await self.c.call_tool(name, args or {})
        text = " ".join(getattr(b, "text", "") for b in r.content)
        assert not r.is_error, f"{name}({args}) failed: {text}"
        assert r.structured_content is not None, f"{name}: no structured content"
        # The text content is the same JSON, for clients that read only text.
        assert json.loads(text) == r.structured_content, f"{name}: text != structured"
        return r.structured_content

    async def err(self, name, args, want):
        self.calls += 1
        r = await self.c.call_tool(name, args)
        text = " ".join(getattr(b, "text", "") for b in r.content)
        assert r.is_error, f"{name}({args}) should fail with {want}: {text}"
        assert text.startswith(want + ":"), f"{name}({args}): want {want}, got {text}"
        return text

    def abs(self, rel):
        return f"{self.prefix}/{rel}"

    def disk(self, rel):
        with open(os.path.join(self.root, rel), "rb") as f:
            return f.read()


async def check_tools(c):
    tools = (await c.list_tools()).tools
    names = {t.name for t in tools}
    assert names == set(TOOLS), f"tools: {sorted(names)}"
    for t in tools:
        props = t.input_schema.get("properties", {})
        assert t.input_schema.get("type") == "object", t.name
        assert set(props) == set(TOOLS[t.name]), f"{t.name} params {sorted(props)}"
        for p, s in props.items():
            assert s.get("description"), f"{t.name}.{p} has no description"
        assert t.output_schema and t.output_schema.get("type") == "object", t.name
        assert t.description, t.name
        assert (t.annotations.read_only_hint is False) == (t.name in WRITE_TOOLS), t.name
    sch = {t.name: t for t in tools}
    assert sch["horace_register_file"].input_schema["required"] == ["file_path"]
    assert "file_id" in sch["horace_restore_version"].input_schema["required"]
    search = sch["horace_search_files"].input_schema["properties"]
    assert search["limit"]["default"] == 50 and search["limit"]["maximum"] == 1000
    for f in ["total_count", "results", "limit", "offset"]:
        assert f in sch["horace_search_files"].output_schema["properties"], f
    for f in ["restored_to_version", "new_version_created", "current_path"]:
        assert f in sch["horace_restore_version"].output_schema["properties"], f
    return len(tools)


async def exercise_reads(run):
    st = await run.ok("horace_get_status")
    assert st["ready"] is True and st["files_active"] >= 4, st
    sy = await run.ok("horace_sync")
    assert sy["synced"] is True and sy["missing"] == [], sy
    s = await run.ok("horace_search_files", {})
    assert (s["limit"], s["offset"]) == (50, 0), s
    assert s["total_count"] == len(s["results"]) >= 4, s
    for f in s["results"]:
        assert isinstance(f["file_id"], str) and f["file_id"].isdigit(), f
        assert f["created_at"].endswith("Z") and f["updated_at"].endswith("Z"), f
        assert f["path"].startswith(run.prefix + "/"), f
        rel = f["path"][len(run.prefix) + 1:]
        assert f["checksum"] == sha(run.disk(rel)), f
        assert f["size"] == len(run.disk(rel)), f
    # Newest first by default.
    created = [f["created_at"] for f in s["results"]]
    assert created == sorted(created, reverse=True), created
    txt = await run.ok("horace_search_files", {"query": {"file_type": ".txt"}, "sort_by": "name",
                                               "order": "asc"})
    paths = [f["path"] for f in txt["results"]]
    assert paths == sorted(paths) and all(p.endswith(".txt") for p in paths), paths
    page = await run.ok("horace_search_files", {"limit": 1, "offset": 1})
    assert len(page["results"]) == 1 and page["total_count"] == s["total_count"], page
    by_id = {f["path"]: f["file_id"] for f in s["results"]}
    a = by_id[run.abs("svc/a.txt")]
    info = await run.ok("horace_get_file_info", {"file_id": a})
    assert "versions" not in info and info["current_version"] == 2, info
    info = await run.ok("horace_get_file_info", {"file_id": a, "include_versions": True})
    assert [v["version"] for v in info["versions"]] == [1, 2], info
    assert info["versions"][0]["checksum"] == sha(b"one"), info
    by_path = await run.ok("horace_get_file_info", {"file_id": run.abs("svc/a.txt")})
    assert by_path["file_id"] == a, by_path
    vs = await run.ok("horace_list_versions", {"file_id": a})
    assert [v["version"] for v in vs["versions"]] == [1, 2], vs
    d = await run.ok("horace_find_duplicates", {})
    groups = [sorted(f["path"] for f in g["files"]) for g in d["groups"]]
    assert [run.abs("svc/b.txt"), run.abs("svc/c.txt")] in groups, d
    g = next(g for g in d["groups"] if g["checksum"] == sha(b"dup"))
    assert g["count"] == 2 and g["wasted_bytes"] == 3, g
    # Snapshots are off in the test watcher: a list (empty) or ZfsdUnreachable.
    r = await run.c.call_tool("horace_list_snapshots", {})
    text = " ".join(getattr(b, "text", "") for b in r.content)
    assert (not r.is_error and r.structured_content["snapshots"] == []) or \
        text.startswith("ZfsdUnreachable:"), text
    await run.ok("horace_list_collections", {})
    # Bad input: tool errors naming Horace's error, the server stays up.
    await run.err("horace_get_file_info", {"file_id": "999999"}, "FileNotFound")
    await run.err("horace_get_file_info", {}, "InvalidArgument")
    await run.err("horace_get_file_info", {"file_id": 5}, "InvalidArgument")
    await run.err("horace_get_file_info", {"file_id": a, "bogus": 1}, "InvalidArgument")
    await run.err("horace_list_versions", {"file_id": run.abs("svc/none.txt")}, "FileNotFound")
    await run.err("horace_search_files", {"limit": 5000}, "InvalidArgument")
    await run.err("horace_search_files", {"query": {"status": "gone"}}, "InvalidArgument")
    await run.err("horace_search_files", {"query": {"created_after": "yesterday"}},
                  "InvalidArgument")
    await run.err("horace_search_files", {"sort_by": "colour"}, "InvalidArgument")
    await run.err("horace_find_duplicates", {"limit": -1}, "InvalidArgument")
    await run.err("horace_list_collections", {"limit": "ten"}, "InvalidArgument")
    await run.err("horace_get_status", {"x": 1}, "InvalidArgument")
    try:
        await run.c.call_tool("horace_no_such_tool", {})
        raise AssertionError("unknown tool answered")
    except MCPError as e:
        assert "unknown tool" in str(e) or e.code in (-32602, -32601), e
    return a


async def exercise_writes(run, a):
    """Every write tool, good and bad; returns the ids the Rust test checks the catalog for."""
    new_bytes = b"PK\x03\x04 an odt, more or less"
    os.makedirs(os.path.join(run.root, "gates"), exist_ok=True)
    with open(os.path.join(run.root, "gates/new.odt"), "wb") as f:
        f.write(new_bytes)
    meta = {"owner": "gates", "purpose": "ICCM v3 Paper", "tags": ["paper", "v3"],
            "collection": "ICCM_v3_Papers", "correlation_id": "a1b2c3d4"}
    reg = await run.ok("horace_register_file", {"file_path": run.abs("gates/new.odt"),
                                                "metadata": meta})
    assert reg["checksum"] == sha(new_bytes) and reg["size"] == len(new_bytes), reg
    assert reg["version"] == 1 and reg["registered_at"].endswith("Z"), reg
    new = reg["file_id"]
    again = await run.ok("horace_register_file", {"file_path": "gates/new.odt"})
    assert again["file_id"] == new and again["version"] == 1, again
    info = await run.ok("horace_get_file_info", {"file_id": new, "include_versions": True})
    for k in ["owner", "purpose", "correlation_id", "collection"]:
        assert info[k] == meta[k], (k, info)
    assert info["tags"] == ["paper", "v3"] and len(info["versions"]) == 1, info
    found = await run.ok("horace_search_files", {"query": {"tags": ["paper", "v3"]}})
    assert [f["file_id"] for f in found["results"]] == [new], found
    found = await run.ok("horace_search_files", {"query": {"collection": "ICCM_v3_Papers",
                                                           "owner": "gates"}})
    assert found["total_count"] == 1, found
    await run.err("horace_register_file", {"file_path": "/etc/passwd"}, "InvalidPath")
    await run.err("horace_register_file", {"file_path": run.abs("gates/../../x")}, "InvalidPath")
    await run.err("horace_register_file", {"file_path": run.abs("gates/missing.odt")},
                  "FileNotFound")
    await run.err("horace_register_file", {"file_path": "gates/new.odt",
                                           "metadata": {"tags": "paper"}}, "InvalidArgument")
    await run.err("horace_register_file", {"metadata": {}}, "InvalidArgument")

    col = await run.ok("horace_create_collection", {"name": "papers", "description": "All",
                                                    "file_ids": [a, new]})
    assert col["created"] is True and col["file_count"] == 2 and col["files_added"] == 2, col
    assert col["description"] == "All" and col["collection_id"].isdigit(), col
    col = await run.ok("horace_create_collection", {"name": "papers",
                                                    "file_ids": [run.abs("svc/b.txt"), new]})
    assert col["created"] is False and col["file_count"] == 3 and col["files_added"] == 1, col
    await run.err("horace_create_collection", {"name": "ghost", "file_ids": ["999999"]},
                  "FileNotFound")
    await run.err("horace_create_collection", {"description": "x"}, "InvalidArgument")
    cols = await run.ok("horace_list_collections", {})
    names = {c["name"]: c["file_count"] for c in cols["collections"]}
    assert names == {"ICCM_v3_Papers": 1, "papers": 3}, cols
    assert cols["total_count"] == 2, cols
    one = await run.ok("horace_list_collections", {"limit": 1, "offset": 1})
    assert [c["name"] for c in one["collections"]] == ["papers"], one

    up = await run.ok("horace_update_file", {"file_id": a, "metadata": {
        "tags": ["x", "y"], "purpose": "notes", "status": "archived"}})
    assert sorted(up["updated_fields"]) == ["purpose", "status", "tags"], up
    assert up["version_created"] is False and up["current_version"] == 2, up
    info = await run.ok("horace_get_file_info", {"file_id": a})
    assert info["tags"] == ["x", "y"] and info["status"] == "archived", info
    assert run.disk("svc/a.txt") == b"two", "archiving touched the file"
    hidden = await run.ok("horace_search_files", {"query": {"tags": ["x"]}})
    shown = await run.ok("horace_search_files", {"query": {"tags": ["x"], "status": "archived"}})
    assert hidden["total_count"] == 0 and shown["total_count"] == 1, (hidden, shown)
    up = await run.ok("horace_update_file", {"file_id": a, "metadata": {
        "tags": ["y"], "status": "active"}})
    info = await run.ok("horace_get_file_info", {"file_id": a})
    assert info["tags"] == ["y"] and info["status"] == "active", info
    same = await run.ok("horace_update_file", {"file_id": a, "check_for_changes": True})
    assert same["version_created"] is False and same["current_version"] == 2, same
    with open(os.path.join(run.root, "svc/a.txt"), "wb") as f:
        f.write(b"three")
    changed = await run.ok("horace_update_file", {"file_id": a, "check_for_changes": True})
    assert changed["current_version"] == 3, changed
    info = await run.ok("horace_get_file_info", {"file_id": a})
    assert info["checksum"] == sha(b"three"), info
    await run.err("horace_update_file", {"file_id": "999999", "metadata": {"purpose": "x"}},
                  "FileNotFound")
    await run.err("horace_update_file", {"file_id": a, "metadata": {"status": "gone"}},
                  "InvalidArgument")
    await run.err("horace_update_file", {"file_id": a, "metadata": {"colour": "red"}},
                  "InvalidArgument")

    res = await run.ok("horace_restore_version", {"file_id": a, "version": 1})
    assert res == {"file_id": a, "restored_to_version": 1, "new_version_created": 4,
                   "current_path": run.abs("svc/a.txt")}, res
    assert run.disk("svc/a.txt") == b"one", "restore did not put the old bytes back"
    vs = await run.ok("horace_list_versions", {"file_id": a})
    assert [v["version"] for v in vs["versions"]] == [1, 2, 3, 4], vs
    assert vs["versions"][-1]["restored_from_version"] == 1, vs
    assert vs["versions"][-1]["checksum"] == sha(b"one"), vs
    await run.err("horace_restore_version", {"file_id": a, "version": 99}, "VersionNotFound")
    await run.err("horace_restore_version", {"file_id": a, "version": 0}, "InvalidArgument")
    await run.err("horace_restore_version", {"file_id": "999999", "version": 1}, "FileNotFound")
    await run.err("horace_restore_version", {"file_id": a}, "InvalidArgument")
    return {"a": a, "new": new}


async def exercise_reader(run):
    """A reader: every write tool is refused with PermissionDenied and nothing changes."""
    s = await run.ok("horace_search_files", {"sort_by": "name", "order": "asc"})
    a = next(f["file_id"] for f in s["results"] if f["path"] == run.abs("svc/a.txt"))
    before = run.disk("svc/a.txt")
    with open(os.path.join(run.root, "svc/reader.txt"), "wb") as f:
        f.write(b"reader")
    await run.err("horace_register_file", {"file_path": "svc/reader.txt"}, "PermissionDenied")
    await run.err("horace_update_file", {"file_id": a, "metadata": {"tags": ["r"]}},
                  "PermissionDenied")
    await run.err("horace_create_collection", {"name": "r", "file_ids": [a]},
                  "PermissionDenied")
    await run.err("horace_restore_version", {"file_id": a, "version": 1}, "PermissionDenied")
    assert run.disk("svc/a.txt") == before, "a reader changed the file"
    info = await run.ok("horace_get_file_info", {"file_id": a})
    assert "r" not in info["tags"], info
    cols = await run.ok("horace_list_collections", {})
    assert all(c["name"] != "r" for c in cols["collections"]), cols
    return {"a": a}


def report(result):
    print(json.dumps(result), flush=True)


def fail(e):
    print(f"mcp check failed: {e!r}", file=sys.stderr, flush=True)
    sys.exit(1)


def run_main(main):
    """Runs a client script's async main; any failure is the test's failure."""
    import asyncio
    import traceback
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - any failure is the test's failure
        traceback.print_exc()
        fail(e)
