"""Several threads allocating at once: each builds, transforms and drops its own data.

The GIL serialises the Python work, but allocation, frees and stack capture
happen on four different threads, interleaved.
"""
import threading


def worker(tag, rounds, results):
    acc = 0
    for r in range(rounds):
        items = [{"k": f"{tag}-{r}-{i}", "v": i * r, "sq": [i, i * i]} for i in range(2000)]
        keys = sorted(d["k"] for d in items)
        joined = ",".join(keys[::50])
        acc += len(joined) + sum(d["sq"][1] % 7 for d in items)
    results[tag] = acc


def main():
    results = {}
    threads = [threading.Thread(target=worker, args=(f"w{k}", 300, results), name=f"alloc-{k}") for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(sorted(results.items()))


if __name__ == "__main__":
    main()
