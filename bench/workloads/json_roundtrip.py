"""JSON encode/decode round trips of nested, mixed documents."""
import json


def make_doc(i):
    return {
        "id": i,
        "name": f"record number {i}",
        "active": i % 3 != 0,
        "score": i * 0.731,
        "tags": [f"t{i % 7}", f"g{i % 11}", "common"],
        "owner": {"uid": i * 17, "email": f"user{i}@example.org", "groups": list(range(i % 5))},
        "history": [{"ts": 1_700_000_000 + k, "delta": k - 2.5, "note": None} for k in range(6)],
    }


def main():
    docs = [make_doc(i) for i in range(2000)]
    total = 0
    for rnd in range(45):
        text = json.dumps(docs)
        back = json.loads(text)
        total += len(text) + len(back)
        pretty = json.dumps(back[rnd * 50:(rnd + 1) * 50], indent=2, sort_keys=True)
        total += len(json.loads(pretty))
    print("bytes+docs", total)


if __name__ == "__main__":
    main()
