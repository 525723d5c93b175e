#!/bin/bash
if [ -f /app/sorted.txt ] && sort -n -c /app/sorted.txt 2>/dev/null \
   && [ "$(wc -l < /app/sorted.txt)" = "$(wc -l < /app/numbers.txt)" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
