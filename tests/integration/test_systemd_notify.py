"""systemd's notification protocol, as a service manager would see it: the test binds
the $NOTIFY_SOCKET datagram socket itself and runs the relay with WATCHDOG_USEC=1 s.

READY=1 arrives when the loop starts; STATUS=streaming once it streams; WATCHDOG=1
every half period from the loop itself -- none while the process is SIGSTOPped, so a
stuck loop would be killed -- and STOPPING=1 at SIGTERM, before the exit.
"""

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def test(env):
    path = os.path.join(env.tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.1)
    got = []  # (time, message)

    def drain(seconds):
        end = time.time() + seconds
        while time.time() < end:
            try:
                got.append((time.time(), sock.recv(4096).decode()))
            except socket.timeout:
                pass

    def count(msg, since=0.0, until=float("inf")):
        return sum(1 for t, m in got if msg in m.split("\n") and since <= t <= until)

    relay = env.relay()
    t_start = time.time()
    relay.start(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    drain(3.0)
    h.check(count("READY=1") == 1, f"READY=1 sent {count('READY=1')} times: {got}")
    h.check(count("STATUS=streaming") >= 1, f"no STATUS=streaming: {got}")
    pings = count("WATCHDOG=1", t_start + 1.0, t_start + 3.0)
    h.check(2 <= pings <= 6, f"{pings} watchdog pings in 2 s with a 1 s watchdog (want ~4)")

    # A stopped loop stops pinging: systemd would kill it after WATCHDOG_USEC.
    relay.signal(signal.SIGSTOP)
    t_stop = time.time()
    drain(1.5)
    relay.signal(signal.SIGCONT)
    stalled = count("WATCHDOG=1", t_stop + 0.1, t_stop + 1.5)
    h.check(stalled == 0, f"{stalled} watchdog pings while the process was stopped")
    drain(1.0)
    h.check(count("WATCHDOG=1", t_stop + 1.5) >= 1, "no watchdog ping after SIGCONT")

    rc, took = relay.stop()
    drain(0.3)
    h.check(rc == 0, f"exit {rc}")
    h.check(count("STOPPING=1") >= 1, f"no STOPPING=1: {got[-5:]}")
    h.log(f"READY=1 once, STATUS=streaming, {pings} pings in 2 s (WATCHDOG_USEC 1 s), none "
          f"while SIGSTOPped, STOPPING=1 at SIGTERM; {len(got)} datagrams in all")
    sock.close()


if __name__ == "__main__":
    h.main(test)
