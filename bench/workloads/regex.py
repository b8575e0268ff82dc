"""Regular expressions over generated log text: search, findall, sub, split, groups."""
import random
import re

LINE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \[(?P<lvl>[A-Z]+)\] (?P<who>[\w.-]+@[\w.-]+): (?P<msg>.*)$")
IP = re.compile(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b")
WORD = re.compile(r"[A-Za-z]{4,}")
NUM = re.compile(r"-?\d+(?:\.\d+)?")


def make_log(n, seed=3):
    rng = random.Random(seed)
    words = ["connect", "timeout", "retry", "accepted", "payload", "session", "closed", "invalid", "token"]
    levels = ["INFO", "WARN", "ERROR", "DEBUG"]
    out = []
    for i in range(n):
        msg = " ".join(rng.choice(words) for _ in range(rng.randrange(3, 9)))
        ip = ".".join(str(rng.randrange(256)) for _ in range(4))
        out.append(f"2024-03-{1 + i % 28:02d} 12:{i % 60:02d}:{(i * 7) % 60:02d} [{rng.choice(levels)}] "
                   f"svc{i % 13}@host-{i % 5}.local: {msg} from {ip} took {rng.uniform(0, 900):.2f}ms code={i % 97}")
    return out


def analyse(lines):
    levels, who, words = {}, {}, {}
    ips = set()
    total_ms = 0.0
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        levels[m["lvl"]] = levels.get(m["lvl"], 0) + 1
        who[m["who"]] = who.get(m["who"], 0) + 1
        msg = m["msg"]
        for w in WORD.findall(msg):
            words[w] = words.get(w, 0) + 1
        for a, b, c, d in IP.findall(msg):
            ips.add((int(a), int(b)))
        nums = NUM.findall(msg)
        if nums:
            total_ms += float(nums[-2]) if len(nums) > 1 else 0.0
    return levels, who, words, len(ips), total_ms


def redact(lines):
    out = []
    for line in lines:
        line = IP.sub("x.x.x.x", line)
        line = re.sub(r"code=\d+", "code=?", line)
        out.append(re.split(r"[:\s]+", line, maxsplit=4)[-1])
    return out


if __name__ == "__main__":
    log = make_log(90_000)
    levels, who, words, nips, ms = analyse(log)
    red = redact(log)
    print(len(levels), len(who), len(words), nips, round(ms), len(red))
