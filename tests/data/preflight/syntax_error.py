# Syntax error on line 5.
# expect: FAIL syntax-error
import json

def train(:
    return 1
