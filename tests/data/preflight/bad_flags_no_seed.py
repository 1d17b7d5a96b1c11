# Argparse without --seed.
# expect: FAIL bad-flags
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--output-dir", default="out")
p.add_argument("--smoke-test", action="store_true")
a = p.parse_args()
