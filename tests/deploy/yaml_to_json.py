"""Reads YAML documents (kubectl kustomize's output) on standard input and prints them as one
JSON array: tests/api/deploy.rs checks the rendered objects without a YAML parser of its own."""
import json
import sys

import yaml

json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)
