#!/usr/bin/env python3
"""Browser tests for clients/js/tessera.js (issue 13), in headless Chromium driven by Selenium.

Real parts only: a `tessera serve` process (the binary scripts/test built), two static page
servers on other loopback ports (an allowed app origin and a non-allowed one), Debian's
chromium and chromedriver. Every test is bounded in time. The last line is "N passed, N failed".

    Tests/Browser/run.py --binary .build/debug/tessera [--only NAME]
"""
import argparse
import functools
import http.server
import json
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
import uuid

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

PAGES = pathlib.Path(__file__).resolve().parent / "pages"
ACCESS_TTL = 6  # seconds: the client refreshes about every 4 s (a third of the lifetime ahead)
PASSWORD = "correct horse"


class Failure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


# --- Servers --------------------------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def page_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(PAGES)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class Tessera:
    """`tessera serve` on a free loopback port, on memory stores; ended by its PID."""

    def __init__(self, binary, cors_origin, extra=()):
        arguments = [
            binary, "serve", "--port", "0", "--database-url", "memory:", "--token-store", "memory",
            "--bcrypt-cost", "4", "--access-ttl", str(ACCESS_TTL), "--cors-origins", cors_origin, "--log-level", "notice",
            # The tests sign up many users from one IP; refresh limits stay at their defaults.
            "--rate-limit-register", "off", "--rate-limit-login", "off", "--rate-limit-login-account", "off", *extra,
        ]
        self.process = subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log = []
        port = None
        deadline = time.monotonic() + 60
        while port is None:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("tessera exited before listening:\n" + "".join(self.log))
            self.log.append(line)
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
            check(time.monotonic() < deadline, "tessera did not start within 60 s")
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = f"http://127.0.0.1:{port}"

    def _drain(self):
        for line in self.process.stdout:
            self.log.append(line)

    def metric(self, name, **labels):
        """The value of one series of /metrics (0 when absent)."""
        text = urllib.request.urlopen(f"{self.url}/metrics", timeout=10).read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            series, value = line.rsplit(" ", 1)
            found = dict(re.findall(r'(\w+)="([^"]*)"', series))
            if all(re.fullmatch(pattern, found.get(key, "")) for key, pattern in labels.items()):
                total += float(value)
        return total

    def refreshes(self):
        return self.metric("tessera_token_operations_total", operation="refreshed")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --- The browser ----------------------------------------------------------------------------

def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                     "--disable-extensions", "--window-size=1000,800"]:
        options.add_argument(argument)
    # An explicit chromedriver: Selenium must not try to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(60)
    return driver


def run_js(driver, body, *arguments):
    """Runs `body` as an async function (arguments as `args`); returns its value or raises its error."""
    script = (
        "const done = arguments[arguments.length - 1]; const args = Array.from(arguments).slice(0, -1);"
        f"(async () => {{ {body} }})().then((value) => done({{ value }}), (error) => done({{ error: String(error && (error.stack || error)) }}));"
    )
    result = driver.execute_async_script(script, *arguments)
    if "error" in result:
        raise Failure(f"page script failed: {result['error']}")
    return result.get("value")


def wait_until(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise Failure(message)


class Context:
    def __init__(self, tessera, app, evil, binary):
        self.tessera, self.app, self.evil, self.binary = tessera, app, evil, binary

    def open_app(self, driver, transport="cookie", new_tab=False):
        if new_tab:
            driver.switch_to.new_window("tab")
        driver.get(f"{self.app}/app.html?base={self.tessera.url}&transport={transport}")
        wait_until(lambda: driver.execute_script("return window.ready === true"), 20, "the app page did not load the client")
        return driver.current_window_handle

    def sign_up(self, driver):
        email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        result = run_js(driver, "const r = await auth.register({ email: args[0], password: args[1], device: 'browser test' }); return r.status;", email, PASSWORD)
        check(result == "signed_in", f"register answered {result}")
        return email


# A loop in one tab: auth.fetch('/v1/auth/me') every 200 ms (1 s in throttled background tabs) for a while.
LOAD = """
const end = Date.now() + args[0];
window.load = { statuses: {}, errors: [], requests: 0, done: false };
(async () => {
  while (Date.now() < end) {
    try {
      const response = await auth.fetch('/v1/auth/me');
      load.statuses[response.status] = (load.statuses[response.status] || 0) + 1;
    } catch (error) {
      load.errors.push(String(error));
    }
    load.requests++;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  load.done = true;
})();
return true;
"""

STORAGE = """
const dump = (storage) => Object.fromEntries(Array.from({ length: storage.length }, (_, i) => [storage.key(i), storage.getItem(storage.key(i))]));
return { cookie: document.cookie, local: dump(localStorage), session: dump(sessionStorage), events: JSON.stringify(window.events) };
"""


def run_load(context, driver, tabs, seconds, label):
    """Runs LOAD in every tab at once; returns the figures."""
    before = context.tessera.refreshes()
    started = time.monotonic()
    for tab in tabs:
        driver.switch_to.window(tab)
        run_js(driver, LOAD, seconds * 1000)
    time.sleep(seconds)
    for tab in tabs:
        driver.switch_to.window(tab)
        wait_until(lambda: driver.execute_script("return window.load.done"), 15, f"{label}: a tab's loop did not finish")
    duration = time.monotonic() - started
    refreshes = context.tessera.refreshes() - before
    statuses, errors, requests, signed_out = {}, [], 0, 0
    for tab in tabs:
        driver.switch_to.window(tab)
        load = driver.execute_script("return window.load")
        requests += load["requests"]
        errors += load["errors"]
        for status, count in load["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
        signed_out += driver.execute_script("return window.events.filter((e) => e.type === 'signed_out').length")
    figures = {"label": label, "tabs": len(tabs), "duration_s": round(duration, 1), "requests": requests, "statuses": statuses,
               "refreshes": int(refreshes), "errors": len(errors), "signed_out": signed_out}
    print(f"    figures: {json.dumps(figures)}", flush=True)
    check(not errors, f"{label}: fetch errors {errors[:3]}")
    check(set(statuses) == {"200"}, f"{label}: statuses {statuses}")
    check(signed_out == 0, f"{label}: {signed_out} signed_out events")
    # One refresh per refresh interval for all tabs together (not one per tab).
    interval = ACCESS_TTL * 2 / 3
    expected = seconds / interval
    check(expected * 0.5 <= refreshes <= expected * 1.5 + 1,
          f"{label}: {refreshes} refreshes in {seconds} s, expected about {expected:.0f} (one per {interval:.0f} s)")
    return figures


# --- Tests ----------------------------------------------------------------------------------

def test_four_tabs_refresh_once_per_interval(context, driver):
    """4 tabs, --access-ttl 6, auth.fetch('/v1/auth/me') for 40 s: only 200s, no signed_out, ~1 refresh per interval."""
    tabs = [context.open_app(driver)]
    email = context.sign_up(driver)
    for _ in range(3):
        tabs.append(context.open_app(driver, new_tab=True))
        check(run_js(driver, "return (await auth.restore())?.email") == email, "a new tab did not share the session")
    figures = run_load(context, driver, tabs, 40, "cookie mode, 4 tabs")
    check(figures["requests"] >= 4 * 40, f"only {figures['requests']} requests")


def test_bearer_mode_tabs_share_one_refresh(context, driver):
    """Bearer mode, 2 tabs for 16 s: the same guarantees; the refresh token is in localStorage (documented)."""
    tabs = [context.open_app(driver, transport="bearer")]
    email = context.sign_up(driver)
    tabs.append(context.open_app(driver, transport="bearer", new_tab=True))
    check(run_js(driver, "return (await auth.restore())?.email") == email, "the second tab did not share the session")
    run_load(context, driver, tabs, 16, "bearer mode, 2 tabs")
    storage = run_js(driver, STORAGE)
    check(any("tsr1." in value for value in storage["local"].values()), "bearer mode: no refresh token in localStorage")
    check(not any("eyJ" in value for value in storage["local"].values()), "bearer mode: the access token reached localStorage")
    check(not storage["session"] and "tessera" not in storage["cookie"], f"bearer mode stored more than documented: {storage}")


def test_logout_reaches_the_other_tabs_within_a_second(context, driver):
    tabs = [context.open_app(driver)]
    context.sign_up(driver)
    for _ in range(2):
        tabs.append(context.open_app(driver, new_tab=True))
        run_js(driver, "return await auth.restore()")
    started = run_js(driver, "const t = Date.now(); await auth.logout(); return t;")
    latest = 0
    for tab in tabs[:-1]:
        driver.switch_to.window(tab)
        wait_until(lambda: driver.execute_script("return window.events.some((e) => e.type === 'signed_out')"), 3,
                   "a tab was not signed out")
        event = driver.execute_script("return window.events.find((e) => e.type === 'signed_out')")
        check(event["reason"] == "logout", f"signed_out reason {event['reason']}")
        latest = max(latest, event["at"] - started)
        check(driver.execute_script("return auth.user") is None, "auth.user is still set")
        check(run_js(driver, "return (await auth.fetch('/v1/auth/me')).status") == 401, "the session still works after logout")
    print(f"    figures: other tabs signed out {latest} ms after logout() was called", flush=True)
    check(latest < 1000, f"the last tab learned of the logout after {latest} ms")


def test_cookie_mode_keeps_tokens_out_of_the_page(context, driver):
    context.open_app(driver)
    context.sign_up(driver)
    time.sleep(ACCESS_TTL)  # one refresh later, too
    storage = run_js(driver, STORAGE)
    cookies = {c["name"]: c for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]}
    access, refresh = cookies.get("__Host-tessera_at"), cookies.get("__Secure-tessera_rt")
    check(access and refresh, f"the browser holds no Tessera cookies: {sorted(cookies)}")
    check(access["httpOnly"] and refresh["httpOnly"] and access["secure"] and refresh["secure"], "cookies not HttpOnly+Secure")
    check(refresh["path"] == "/v1/auth/refresh", f"refresh cookie path {refresh['path']}")
    everything = json.dumps(storage)
    for token in (access["value"], refresh["value"]):
        check(token not in everything, "a token is readable from the page")
    check("eyJ" not in everything and "tsr1." not in everything, f"something token-shaped is readable: {everything}")
    check(storage["cookie"] == "", f"document.cookie shows {storage['cookie']!r}")
    check(any(e["type"] == "refreshed" for e in json.loads(storage["events"])), "no refresh happened in the window")


def test_a_page_of_another_origin_cannot_log_the_user_out(context, driver):
    app = context.open_app(driver)
    context.sign_up(driver)
    ended = context.tessera.metric("tessera_token_operations_total", operation="session_ended")
    refused = lambda: context.tessera.metric("tessera_http_requests_total", route=".*logout.*", status="403")
    before = refused()
    driver.switch_to.new_window("tab")
    # Same site as Tessera (127.0.0.1), so SameSite lets the cookie go along: only the Origin check stands.
    driver.get(f"{context.evil}/evil.html?base={context.tessera.url}")
    run_js(driver, "await window.attack(); return true;")
    attempts = refused() - before
    print(f"    figures: {int(attempts)} cookie-carrying logout attempts refused with 403 csrf_failed", flush=True)
    check(attempts >= 5, f"expected the 5 attacks to reach Tessera with the cookie and be refused, saw {attempts}")
    check(context.tessera.metric("tessera_token_operations_total", operation="session_ended") == ended, "a session was ended")
    driver.switch_to.window(app)
    check(run_js(driver, "return (await auth.fetch('/v1/auth/me')).status") == 200, "the user was signed out")
    check(not driver.execute_script("return window.events.some((e) => e.type === 'signed_out')"), "signed_out was reported")


def test_a_frozen_tab_that_wakes_after_expiry_is_still_signed_in(context, driver):
    context.open_app(driver)
    context.sign_up(driver)
    frozen_for = ACCESS_TTL + 4
    frozen_at = int(time.time() * 1000)
    driver.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "frozen"})
    time.sleep(frozen_for)
    driver.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "active"})
    woke_at = int(time.time() * 1000)
    ticks = driver.execute_script("return window.ticks.filter((t) => t > arguments[0] && t < arguments[1]).length",
                                  frozen_at + 1000, woke_at - 1000)
    check(ticks == 0, f"the page was not frozen ({ticks} heartbeats while frozen)")
    # Without any request from the app, the client notices the late timer and refreshes.
    wait_until(lambda: driver.execute_script("return window.events.some((e) => e.type === 'refreshed' && e.at >= arguments[0])", woke_at - 1000),
               5, "no refresh after waking")
    check(not driver.execute_script("return window.events.some((e) => e.type === 'signed_out')"), "signed out after waking")
    check(driver.execute_script("return auth.user?.email") is not None, "auth.user is null after waking")
    check(run_js(driver, "return (await auth.fetch('/v1/auth/me')).status") == 200, "auth.fetch failed after waking")


def api(context, path, body=None, bearer=None):
    """A plain HTTP call from outside the browser (another device)."""
    request = urllib.request.Request(f"{context.tessera.url}{path}", method="POST", data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"})
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
        return json.loads(text) if text else None


def test_a_final_refusal_signs_every_tab_out_once_and_stops_refreshing(context, driver):
    tabs = [context.open_app(driver)]
    email = context.sign_up(driver)
    for _ in range(2):
        tabs.append(context.open_app(driver, new_tab=True))
        run_js(driver, "return await auth.restore()")
    refreshes = lambda status: context.tessera.metric("tessera_http_requests_total", route=".*refresh", status=status)
    refused_before = refreshes("401")
    # Another device ends every session: the tabs' refresh token is now invalid.
    other = api(context, "/v1/auth/login", {"email": email, "password": PASSWORD})
    api(context, "/v1/auth/logout-all", bearer=other["access_token"])
    for tab in tabs:
        driver.switch_to.window(tab)
        wait_until(lambda: driver.execute_script("return window.events.some((e) => e.type === 'signed_out')"), ACCESS_TTL + 4,
                   "a tab was not signed out after its session ended")
    attempts_after = refreshes(".*")
    time.sleep(ACCESS_TTL + 1)  # long enough for every tab to have refreshed again, had it not stopped
    for tab in tabs:
        driver.switch_to.window(tab)
        events = driver.execute_script("return window.events.filter((e) => e.type === 'signed_out')")
        check(len(events) == 1, f"{len(events)} signed_out events in one tab")
        check(events[0]["reason"] == "invalid_refresh_token", f"reason {events[0]['reason']}")
    refused = refreshes("401") - refused_before
    check(refused == 1, f"{refused} refresh requests were refused: one tab asks, the others learn it from it")
    check(refreshes(".*") == attempts_after, "refreshing went on after the final answer")


def test_an_expired_token_is_refreshed_once_and_the_request_retried(context, driver):
    """The page's clock is set back a minute, so the client believes its token good; Tessera says token_expired."""
    context.open_app(driver, transport="bearer")
    context.sign_up(driver)
    driver.execute_script("window.clockOffset = -60000")
    time.sleep(ACCESS_TTL + 1)
    expired = lambda: context.tessera.metric("tessera_http_requests_total", route=".*/me", status="401")
    before, refreshed = expired(), context.tessera.refreshes()
    status = run_js(driver, "return (await auth.fetch('/v1/auth/me')).status")
    check(status == 200, f"auth.fetch answered {status}")
    check(expired() - before == 1, f"{expired() - before} requests answered 401 (one expected, then the retry)")
    check(context.tessera.refreshes() - refreshed == 1, "not exactly one refresh")
    check(not driver.execute_script("return window.events.some((e) => e.type === 'signed_out')"), "signed out")


def test_a_lost_connection_is_retried_and_the_user_stays_signed_in(context, driver):
    """Offline (CDP) across a refresh time: the refresh fails, is retried, and succeeds once back online."""
    context.open_app(driver)
    context.sign_up(driver)
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    went_offline = int(time.time() * 1000)
    time.sleep(ACCESS_TTL)  # the refresh was due in this window; the token expires in it
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
    wait_until(lambda: driver.execute_script("return window.events.some((e) => e.type === 'refreshed' && e.at > arguments[0])", went_offline),
               8, "no refresh after the connection came back")
    check(not driver.execute_script("return window.events.some((e) => e.type === 'signed_out')"), "signed out by a network error")
    check(run_js(driver, "return (await auth.fetch('/v1/auth/me')).status") == 200, "auth.fetch failed after reconnecting")


def test_a_429_is_retried_no_earlier_than_retry_after(context, driver):
    """A Tessera allowing one refresh per account per 20 s: the second refresh is refused with Retry-After."""
    limited = Tessera(context.binary, cors_origin=context.app, extra=["--rate-limit-refresh-account", "1/20"])
    try:
        driver.get(f"{context.app}/app.html?base={limited.url}&transport=cookie")
        wait_until(lambda: driver.execute_script("return window.ready === true"), 20, "the app page did not load the client")
        context.sign_up(driver)
        refused = lambda: limited.metric("tessera_http_requests_total", route=".*refresh", status="429")
        wait_until(lambda: refused() >= 1, 15, "the refresh limit was never reached")
        first_refusal = time.monotonic()
        # The answer said Retry-After of up to 20 s: no other attempt until then, and the user stays signed in.
        while time.monotonic() - first_refusal < 10:
            check(refused() == 1, f"{refused()} refusals: the client retried before Retry-After")
            time.sleep(0.5)
        check(not driver.execute_script("return window.events.some((e) => e.type === 'signed_out')"), "signed out by a 429")
        check(driver.execute_script("return auth.user?.email") is not None, "auth.user is null after a 429")
        wait_until(lambda: driver.execute_script("return window.events.filter((e) => e.type === 'refreshed').length >= 2"), 20,
                   "no refresh once Retry-After had passed")
        check(refused() <= 2, f"{refused()} refusals")
    finally:
        limited.stop()


TESTS = [
    test_four_tabs_refresh_once_per_interval,
    test_logout_reaches_the_other_tabs_within_a_second,
    test_cookie_mode_keeps_tokens_out_of_the_page,
    test_a_page_of_another_origin_cannot_log_the_user_out,
    test_a_frozen_tab_that_wakes_after_expiry_is_still_signed_in,
    test_bearer_mode_tabs_share_one_refresh,
    test_a_final_refusal_signs_every_tab_out_once_and_stops_refreshing,
    test_an_expired_token_is_refreshed_once_and_the_request_retried,
    test_a_lost_connection_is_retried_and_the_user_stays_signed_in,
    test_a_429_is_retried_no_earlier_than_retry_after,
]


class Timeout(Exception):
    pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--only", help="run the tests whose name contains this")
    parser.add_argument("--test-timeout", type=int, default=180)
    options = parser.parse_args()

    app_server, app = page_server()
    evil_server, evil = page_server()
    tessera = Tessera(options.binary, cors_origin=app)
    context = Context(tessera, app, evil, options.binary)
    passed = failed = 0

    def alarm(*_):
        raise Timeout(f"over {options.test_timeout} s")

    signal.signal(signal.SIGALRM, alarm)
    try:
        for test in TESTS:
            if options.only and options.only not in test.__name__:
                continue
            started = time.monotonic()
            driver = None
            signal.alarm(options.test_timeout)
            try:
                driver = browser()
                test(context, driver)
                passed += 1
                print(f"PASS {test.__name__} ({time.monotonic() - started:.1f} s)", flush=True)
            except Exception as error:  # noqa: BLE001 - every failure is reported, then the next test runs
                failed += 1
                print(f"FAIL {test.__name__} ({time.monotonic() - started:.1f} s): {error}", flush=True)
                if not isinstance(error, (Failure, Timeout)):
                    traceback.print_exc()
            finally:
                signal.alarm(0)
                if driver is not None:
                    driver.quit()
    finally:
        tessera.stop()
        app_server.shutdown()
        evil_server.shutdown()
    if failed:
        print("tessera log (tail):\n" + "".join(tessera.log[-30:]))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
