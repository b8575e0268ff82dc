"""A service-like loop for bench/soak.py: REQUESTS requests paced at RATE per
second, each building a response that goes into a bounded cache (the live
set stays at CACHE responses), served in batches of 100, each batch by a
thread of its own (threads start and end all the time), named after its
first request (NAMES=unique, the default) or all alike (NAMES=same).

usage: service.py REQUESTS RATE [unique|same]
"""
import collections
import sys
import threading
import time

CACHE = 2000
BATCH = 100
cache = collections.OrderedDict()


def render(i):
    return {"id": i, "name": "user-%d" % i, "tags": [str(j) for j in range(i % 20)], "body": "x" * (100 + i % 900)}


def handle(i):
    key = i % 5000
    cache[key] = render(i)
    cache.move_to_end(key)
    while len(cache) > CACHE:
        cache.popitem(last=False)


def serve(start):
    for i in range(start, start + BATCH):
        handle(i)


def main():
    requests, rate = int(sys.argv[1]), float(sys.argv[2])
    unique = sys.argv[3:] != ["same"]
    began = time.monotonic()
    for start in range(0, requests, BATCH):
        worker = threading.Thread(target=serve, args=(start,), name="batch-%d" % start if unique else "batch")
        worker.start()
        worker.join()
        ahead = began + (start + BATCH) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    live = sum(len(r["body"]) for r in cache.values())
    print("served %d requests; %d cached, %d body bytes live" % (requests, len(cache), live))


if __name__ == "__main__":
    main()
