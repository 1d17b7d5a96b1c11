# Inconsistent indentation.
# expect: FAIL syntax-error
import json

if True:
    x = 1
      y = 2
