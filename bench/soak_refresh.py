#!/usr/bin/env python3
"""Sustained rotating-refresh traffic against a running `tessera serve`, to show that the
database stays bounded: housekeeping removes rotated-out refresh tokens past their retry
window, expired access tokens and old codes, so row counts level off instead of growing.

    python3 bench/soak_refresh.py --bin target/release/tessera --seconds 120 --families 20

It starts its own server on a free loopback port with a fresh database in a temp directory,
creates a rotating client (retry window 5 s, access tokens of 30 s) and a user per family with
the admin CLI, mints one family per worker, then refreshes each family in a loop, saving every rotated
token, and prints `admin stats` row counts every 15 s. Standard library only.
"""
import argparse, http.client, json, os, shutil, socket, subprocess, sys, tempfile, threading, time, urllib.parse


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--families", type=int, default=20)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="tessera-soak.")
    env = dict(os.environ, TESSERA_DATA_DIR=work, TESSERA_LOG="warn", NO_COLOR="1")
    db = f"sqlite://{work}/tessera.db"
    port = free_port()
    base = ["--database", db]

    def admin(*a, stdin=None):
        out = subprocess.run([args.bin, *base, "admin", "--json", *a], input=stdin, capture_output=True, text=True, env=env, check=True)
        return json.loads(out.stdout)

    # One user per family: five grants per user per client is the approval limit.
    for i in range(args.families):
        admin("user", "create", "--username", f"soak{i}@example.com", "--password-stdin", stdin="soak password")
    client = admin("client", "create", "--name", "soak", "--redirect-uri", "http://127.0.0.1/cb",
                   "--rotate-refresh-tokens", "--refresh-retry-window", "5s", "--access-token-ttl", "30s")
    server = subprocess.Popen([args.bin, *base, "serve", "--listen", f"127.0.0.1:{port}", "--housekeeping-interval", "10s"],
                              env=env, stderr=open(f"{work}/server.log", "w"))
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        tokens = [admin("token", "mint", "--client-id", client["client_id"], "--username", f"soak{i}@example.com", "--scope", "api refresh_token")["refresh_token"]
                  for i in range(args.families)]
        counts = {"ok": 0, "err": 0}
        lock = threading.Lock()
        stop = time.time() + args.seconds

        def worker(i):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            token = tokens[i]
            while time.time() < stop:
                body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": token,
                                               "client_id": client["client_id"], "client_secret": client["client_secret"]})
                conn.request("POST", "/services/oauth2/token", body, {"Content-Type": "application/x-www-form-urlencoded"})
                r = conn.getresponse(); data = r.read()
                with lock:
                    if r.status == 200:
                        counts["ok"] += 1
                    else:
                        counts["err"] += 1
                if r.status == 200:
                    token = json.loads(data)["refresh_token"]
                else:
                    print("error", r.status, data[:200], file=sys.stderr)
                    return

        def stats(label):
            s = admin("stats")
            print(f"{label:>8}  refreshes={counts['ok']:>7}  errors={counts['err']}  " +
                  "  ".join(f"{k}={s[k]}" for k in ("grants", "refresh_tokens", "access_tokens", "events")), flush=True)

        stats("start")
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.families)]
        for t in threads:
            t.start()
        t0 = time.time()
        while any(t.is_alive() for t in threads):
            time.sleep(15)
            stats(f"{int(time.time() - t0)}s")
        time.sleep(12)
        stats("settled")
        print(f"database file: {os.path.getsize(f'{work}/tessera.db')} bytes")
    finally:
        server.terminate(); server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
