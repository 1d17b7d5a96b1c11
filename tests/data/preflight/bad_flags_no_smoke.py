# Argparse with --output_dir (underscore) and no --smoke-test.
# expect: FAIL bad-flags
import argparse
p = argparse.ArgumentParser()
p.add_argument("--output_dir")
p.add_argument("--seed", type=int)
p.parse_args()
