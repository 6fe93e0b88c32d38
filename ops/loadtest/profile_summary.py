"""Where a process spends its CPU, from py-spy's collapsed stacks (``make bench`` with ``--profile``).

    .venv/bin/python ops/loadtest/profile_summary.py .run/bench/profile/svc_order-0.txt [--top 25]

Prints the functions with the largest share of samples, inclusive (the function and what it calls)
and self (the function's own code), file paths shortened to the package.
"""
import argparse
import re
from collections import Counter


def short(frame):
    # "handle (/work/main/.venv/lib/python3.11/site-packages/kombu/messaging.py:839)" -> "handle (kombu/messaging.py)"
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    function, path = match.groups()
    path = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", path)
    path = re.sub(r".*/work/[^/]+/", "", path)
    return f"{function} ({path})"


def summarise(path, top):
    inclusive, own, total = Counter(), Counter(), 0
    with open(path) as stacks:
        for line in stacks:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count)
            frames = [short(frame) for frame in stack.split(";")]
            total += count
            for frame in set(frames):
                inclusive[frame] += count
            own[frames[-1]] += count
    print(f"{path}: {total} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"  {title}:")
        for frame, count in counter.most_common(top):
            print(f"    {100 * count / total:5.1f}%  {frame}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        summarise(path, args.top)


if __name__ == "__main__":
    main()
