"""Every configuration key a sink or the core declares (the rows of relay/sink_*.c and
relay/config.c) is documented in docs/configuration.md, and every sink has its page
under docs/sinks/ (Kafka's keys live in configuration.md itself, stdout's in it too).  No server: it reads the sources and
the docs, so that a new key or sink cannot land undocumented.
"""

import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    doc = open(os.path.join(ROOT, "docs", "configuration.md")).read()
    missing, sinks = [], set()
    for path in sorted(glob.glob(os.path.join(ROOT, "relay", "sink_*.c"))):
        text = open(path).read()
        rows = re.findall(r'\.section = "([a-z_]+)", \.key = "([a-z_.]+)"', text)
        for section, key in rows:
            sinks.add(section)
            if f"`{section}.{key}`" not in doc:
                missing.append(f"{section}.{key} ({os.path.basename(path)})")
    # The core's keys too (relay/config.c), the inbox's among them.
    core = re.findall(r'\.section = "([a-z_]+)", \.key = "([a-z_.]+)"',
                      open(os.path.join(ROOT, "relay", "config.c")).read())
    for section, key in core:
        if f"`{section}.{key}`" not in doc:
            missing.append(f"{section}.{key} (config.c)")
    if len(core) < 40:
        print(f"FAIL: only {len(core)} core keys found in relay/config.c")
        return 1
    if len(sinks) < 7:
        print(f"FAIL: only {len(sinks)} sink sections found in relay/sink_*.c: {sorted(sinks)}")
        return 1
    pages = [s for s in sorted(sinks - {"kafka", "stdout"})
             if not os.path.exists(os.path.join(ROOT, "docs", "sinks", f"{s}.md"))]
    if missing or pages:
        print(f"FAIL: undocumented keys {missing}; sinks without a page in docs/sinks/ {pages}")
        return 1
    print(f"{len(sinks)} sink sections, every key in docs/configuration.md, a page each")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
