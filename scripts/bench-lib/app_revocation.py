#!/usr/bin/env python3
"""Revocation at Tessera -> refused by an app using TesseraRemoteVerifier, over HTTP on loopback:
log a fresh session out at Tessera, then poll the app's protected route (keep-alive, back to
back) until it answers 401; the time from Tessera's 204 to the app's first 401 is one sample.
Usage: app_revocation.py TESSERA_PORT APP_PORT EMAIL PASSWORD SAMPLES"""
import http.client, json, sys, time

tessera_port, app_port, email, password, samples = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])

def connect(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.connect()
    return c

def call(conn, method, path, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()

tessera, app = connect(tessera_port), connect(app_port)
fresh = []
for _ in range(samples):
    status, body = call(tessera, "POST", "/v1/auth/login", body=json.dumps({"email": email, "password": password}))
    fresh.append(json.loads(body)["access_token"])

delays, misses = [], 0
for token in fresh:
    assert call(app, "GET", "/hello", token)[0] == 200
    assert call(tessera, "POST", "/v1/auth/logout", token)[0] == 204
    start = time.perf_counter()
    while True:
        status = call(app, "GET", "/hello", token)[0]
        assert status != 503, "the app could not decide (verifier out of sync)"
        if status == 401:
            break
        if time.perf_counter() - start > 2:
            misses += 1
            break
    delays.append((time.perf_counter() - start) * 1000)

delays.sort()
pct = lambda p: delays[min(len(delays) - 1, int(len(delays) * p))]
print("%-34s %9d samples  p50 %8.3f ms   p99 %8.3f ms   max %.3f ms   (>2 s: %d)"
      % ("revocation Tessera -> app (poll)", len(delays), pct(0.5), pct(0.99), delays[-1], misses))
