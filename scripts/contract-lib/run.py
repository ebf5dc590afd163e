"""Runs schemathesis against a real `tessera serve` and prints the figures.

The server: the debug binary, SQLite stores in a temporary directory, a free loopback port,
bcrypt cost 4, rate limits, lockout and slow-down off (the fuzzer registers thousands of users
from one address; the limits have their own tests), and every key set so that every endpoint is
on. It is ended by its PID. The last line is "contract: N passed, N failed".
"""
import argparse
import http.server
import json
import os
import pathlib
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
VENV = ROOT / ".venv-test"


class TokenEndpoint(http.server.BaseHTTPRequestHandler):
    """The provider of OAuth2 session credentials: every refresh succeeds."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": secrets.token_hex(16), "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_token_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/token"


def start_server(binary, directory, keys, token_endpoint):
    arguments = [
        binary, "serve", "--host", "127.0.0.1", "--port", "0",
        "--database-url", f"sqlite:{directory}/tessera.db", "--token-store", "sqlite",
        "--bcrypt-cost", "4", "--log-level", "notice",
        "--admin-key", keys["admin"], "--service-key", keys["service"], "--metrics-key", keys["metrics"],
        "--lockout-threshold", "0", "--login-slowdown-threshold", "0",
        "--upstream-token-endpoints", token_endpoint,
    ]
    for action in ["login", "login-account", "register", "forgot", "forgot-account", "mfa", "mfa-account", "refresh", "refresh-account"]:
        arguments += [f"--rate-limit-{action}", "off"]
    process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    deadline = time.monotonic() + 120
    while True:
        line = process.stdout.readline()
        if not line:
            sys.exit("contract: tessera exited before listening:\n" + "".join(log))
        log.append(line)
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if match:
            break
        if time.monotonic() > deadline:
            process.kill()
            sys.exit("contract: tessera did not start within 120 s")

    def drain():
        for line in process.stdout:
            log.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return process, f"http://127.0.0.1:{match.group(1)}", log


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=None)
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("CONTRACT_MAX_EXAMPLES", "150")))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--schema-file", help="fuzz with this document instead of the served one (while editing the YAML)")
    parser.add_argument("--only", action="append", default=[], help="an operationId to test alone (repeatable)")
    options = parser.parse_args()
    binary = options.binary or str(
        pathlib.Path(subprocess.check_output(["swift", "build", "--show-bin-path"], cwd=ROOT, text=True).strip()) / "tessera"
    )
    keys = {name: f"{name}-{secrets.token_hex(16)}" for name in ["admin", "service", "metrics"]}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tessera-contract-") as directory:
        upstream, token_endpoint = start_token_endpoint()
        process, url, log = start_server(binary, directory, keys, token_endpoint)
        try:
            environment = dict(
                os.environ,
                SCHEMATHESIS_HOOKS="hooks",
                PYTHONDONTWRITEBYTECODE="1",
                PYTHONPATH=str(ROOT / "scripts/contract-lib"),
                TESSERA_CONTRACT_URL=url,
                TESSERA_CONTRACT_ADMIN_KEY=keys["admin"],
                TESSERA_CONTRACT_SERVICE_KEY=keys["service"],
                TESSERA_CONTRACT_METRICS_KEY=keys["metrics"],
                TESSERA_CONTRACT_TOKEN_ENDPOINT=token_endpoint,
            )
            command = [
                str(VENV / "bin/schemathesis"), "--config-file", str(ROOT / "scripts/contract-lib/schemathesis.toml"),
                "run", *([os.path.abspath(options.schema_file), "--url", url] if options.schema_file else [f"{url}/openapi.json"]),
                # No --checks: every check is on by default, and `--checks all` would override
                # the per-operation settings of schemathesis.toml.
                "--max-examples", str(options.max_examples),
                "--workers", "2",
                "--request-timeout", "30",
                # GET /v1/revocations/stream is one response that never ends (server-sent events):
                # a request-response fuzzer would wait on it until its timeout, every case. Its
                # protocol is tested by RevocationPropagationTests and RemoteVerifierTests.
                "--exclude-operation-id", "followRevocations",
                "--no-color",
            ]
            for operation in options.only:
                command += ["--include-operation-id", operation]
            if options.seed is not None:
                command += ["--seed", str(options.seed)]
            run = subprocess.Popen(command, cwd=directory, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            output = []
            for line in run.stdout:
                sys.stdout.write(line)
                output.append(line)
            returncode = run.wait()
            figures = summarize("".join(output))
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
            upstream.shutdown()
        server_errors = [line for line in log if "unhandled error" in line or "internal_error" in line]
        if server_errors:
            print("contract: the server logged internal errors:\n" + "".join(server_errors[:20]))
    elapsed = time.monotonic() - started
    print(
        f"contract: {figures['operations']} operations, {figures['cases']} test cases, "
        f"{figures['failures']} failures, {figures['errors']} errors, in {elapsed:.0f} s"
    )
    failed = returncode != 0 or figures["failures"] or figures["errors"] or server_errors
    print(f"contract: {0 if failed else 1} passed, {1 if failed else 0} failed")
    sys.exit(1 if failed else 0)


def summarize(output):
    """The figures of schemathesis's summary."""
    def number(pattern):
        match = re.search(pattern, output)
        return int(match.group(1)) if match else 0

    return {
        "operations": number(r"Tested: (\d+)"),
        "cases": number(r"(\d+) generated"),
        "failures": number(r"found (\d+) unique failures"),
        "errors": number(r"(\d+) errors?[ ,].*in [\d.]+s ="),
    }


if __name__ == "__main__":
    main()
