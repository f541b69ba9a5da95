"""Python's aioftp against Ferry: upload, stat and exists of a relative name after a change of
directory (MLST relative to the working directory), listing, download.

Usage: python3 aioftp_round_trip.py PORT USER PASSWORD LOCAL_FILE
Prints a JSON line with what it saw."""
import asyncio
import json
import pathlib
import sys
import tempfile

import aioftp


async def main(port, user, password, local):
    data = pathlib.Path(local).read_bytes()
    async with aioftp.Client.context("127.0.0.1", int(port), user, password) as client:
        await client.make_directory("sub")
        await client.change_directory("sub")
        await client.upload(local, "upload.bin", write_into=True)
        stat = await client.stat("upload.bin")
        exists = await client.exists("upload.bin")
        missing = await client.exists("nothing-here.bin")
        names = [str(path) for path, _ in await client.list()]
        target = pathlib.Path(tempfile.mkdtemp()) / "back.bin"
        await client.download("upload.bin", target, write_into=True)
        print(json.dumps({
            "size": int(stat["size"]),
            "type": stat["type"],
            "exists": exists,
            "missing": missing,
            "names": names,
            "same": target.read_bytes() == data,
        }))


asyncio.run(main(*sys.argv[1:5]))
