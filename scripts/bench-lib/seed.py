#!/usr/bin/env python3
"""Writes the Redis protocol for N sessions shaped like TEMPLATE (a real session's HGETALL, one
field or value per line), PER_USER sessions per user (default 1: one user each, the worst case),
for `redis-cli --pipe`. Usage: seed.py TEMPLATE N [PREFIX] [PER_USER]"""
import os, sys, base64, time

template_path, count = sys.argv[1], int(sys.argv[2])
prefix = sys.argv[3] if len(sys.argv) > 3 else "tessera:"
per_user = int(sys.argv[4]) if len(sys.argv) > 4 else 1
lines = open(template_path).read().split("\n")
fields = dict(zip(lines[0::2], lines[1::2]))
fields.pop("", None)
if "uid" in fields:  # layout 1: decimal seconds, the ids repeated in the hash
    expiry = min(float(fields["idle"]), float(fields["abs"]))
    expiry_ms = str(int(expiry * 1000) + 1).encode()
    score = repr(expiry).encode()
else:  # layout 2: integer milliseconds, whole-second index scores rounded up
    expiry = min(int(fields["i"]), int(fields["a"]))
    expiry_ms = str(expiry).encode()
    score = str(-(-expiry // 1000)).encode()

def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)

constant = [(k.encode(), v.encode()) for k, v in fields.items() if k not in ("uid", "sid")]
out = sys.stdout.buffer
chunk = []
for i in range(count):
    u = i // per_user
    user = ("%08x-5eed-4000-8000-%012x" % (u, u)).encode()
    sid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=")
    upfx = prefix.encode() + b"{u:" + user + b"}:"
    key = upfx + b"s:" + sid
    index = upfx + b"sessions"
    pairs = ([(b"uid", user), (b"sid", sid)] if "uid" in fields else []) + constant
    hset = [b"HSET", key] + [x for pair in pairs for x in pair]
    chunk.append(b"*%d\r\n" % len(hset) + b"".join(bulk(x) for x in hset))
    chunk.append(b"*3\r\n" + bulk(b"PEXPIREAT") + bulk(key) + bulk(expiry_ms))
    chunk.append(b"*4\r\n" + bulk(b"ZADD") + bulk(index) + bulk(score) + bulk(sid))
    chunk.append(b"*3\r\n" + bulk(b"PEXPIREAT") + bulk(index) + bulk(expiry_ms))
    if len(chunk) >= 4096:
        out.write(b"".join(chunk))
        chunk = []
out.write(b"".join(chunk))
