#!/bin/bash
set -euo pipefail
wc -w < input.txt | tr -d ' ' > count.txt
