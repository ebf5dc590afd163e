#!/usr/bin/env python3
"""Load for scripts/chaos: logins, refreshes, /me and logouts against one Tessera on loopback.

Every logout answered 204 is an acknowledged revocation; its access and refresh tokens are
checked again and again while the run lasts, and once more at the end. Either being accepted
(200) later is counted. Standard library only; loopback only; bounded by --seconds.
"""
import argparse
import http.client
import json
import random
import threading
import time


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def call(self, method, path, body=None, bearer=None):
        """Returns (status or None on a connection error, json body, seconds)."""
        headers = {"Content-Type": "application/json"}
        if bearer:
            headers["Authorization"] = "Bearer " + bearer
        data = json.dumps(body).encode() if body is not None else None
        started = time.monotonic()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None, {}, time.monotonic() - started
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {}
        return status, parsed, time.monotonic() - started


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.server_errors = 0
        self.connection_errors = 0
        self.max_latency = 0.0
        self.logouts = 0
        self.revoked = []          # (access, refresh) of acknowledged logouts
        self.accepted = set()      # indexes into revoked accepted after their 204
        self.accepted_access = 0
        self.accepted_refresh = 0

    def record(self, status, seconds):
        with self.lock:
            self.requests += 1
            if status is None:
                self.connection_errors += 1
            elif status >= 500:
                self.server_errors += 1
            self.max_latency = max(self.max_latency, seconds)


def worker(port, users, stats, stop, seed):
    rng = random.Random(seed)
    client = Client(port)
    while not stop.is_set():
        email = rng.choice(users)
        status, grant, seconds = client.call("POST", "/v1/auth/login", {"email": email, "password": "chaos password"})
        stats.record(status, seconds)
        if status != 200:
            time.sleep(0.05)
            continue
        for _ in range(rng.randint(0, 2)):
            status, body, seconds = client.call("POST", "/v1/auth/refresh", {"refresh_token": grant["refresh_token"]})
            stats.record(status, seconds)
            if status == 200:
                grant = body
        status, _, seconds = client.call("GET", "/v1/auth/me", bearer=grant["access_token"])
        stats.record(status, seconds)
        status, _, seconds = client.call("POST", "/v1/auth/logout", bearer=grant["access_token"])
        stats.record(status, seconds)
        if status == 204:
            with stats.lock:
                stats.logouts += 1
                stats.revoked.append((grant["access_token"], grant["refresh_token"]))
            # The very next request with the logged-out token.
            check(client, stats, len(stats.revoked) - 1, grant["access_token"], None)


def check(client, stats, index, access, refresh):
    status, _, seconds = client.call("GET", "/v1/auth/me", bearer=access)
    stats.record(status, seconds)
    if status == 200:
        with stats.lock:
            if index not in stats.accepted:
                stats.accepted.add(index)
            stats.accepted_access += 1
    if refresh is not None:
        status, _, seconds = client.call("POST", "/v1/auth/refresh", {"refresh_token": refresh})
        stats.record(status, seconds)
        if status == 200:
            with stats.lock:
                stats.accepted.add(index)
                stats.accepted_refresh += 1


def checker(port, stats, stop):
    """Keeps re-presenting a sample of the acknowledged revocations."""
    client = Client(port)
    rng = random.Random(7)
    while not stop.is_set():
        with stats.lock:
            count = len(stats.revoked)
        if count == 0:
            time.sleep(0.05)
            continue
        index = rng.randrange(count)
        access, refresh = stats.revoked[index]
        # Presenting a revoked refresh token is harmless: it only ever answers 401.
        check(client, stats, index, access, refresh if rng.random() < 0.3 else None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--setup-only", action="store_true")
    parser.add_argument("--verify", help="JSON file of a previous run: re-check its revocations only")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    if args.verify:
        with open(args.verify) as f:
            previous = json.load(f)
        stats = Stats()
        client = Client(args.port)
        accepted = 0
        for access, refresh in previous["revoked"]:
            ok = False
            for status in (client.call("GET", "/v1/auth/me", bearer=access)[0],
                           client.call("POST", "/v1/auth/refresh", {"refresh_token": refresh})[0]):
                ok = ok or status == 200
            accepted += ok
        previous["final_accepted"] = accepted
        with open(args.out, "w") as f:
            json.dump(previous, f)
        return

    users = ["chaos-%d@example.com" % i for i in range(args.users)]
    client = Client(args.port)
    for email in users:
        client.call("POST", "/v1/auth/register", {"email": email, "password": "chaos password"})
    if args.setup_only:
        return

    stats = Stats()
    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(args.port, users, stats, stop, i)) for i in range(args.workers)]
    threads.append(threading.Thread(target=checker, args=(args.port, stats, stop)))
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    with open(args.out, "w") as f:
        json.dump({
            "requests": stats.requests, "server_errors": stats.server_errors,
            "connection_errors": stats.connection_errors, "max_latency": stats.max_latency,
            "logouts": stats.logouts, "accepted_during_run": len(stats.accepted),
            "accepted_access": stats.accepted_access, "accepted_refresh": stats.accepted_refresh,
            "revoked": stats.revoked,
        }, f)


if __name__ == "__main__":
    main()
