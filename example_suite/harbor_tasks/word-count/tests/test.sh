#!/bin/bash
# Reward 1 when /app/count.txt holds the word count of /app/input.txt.
expected=$(python3 -c 'print(len(open("/app/input.txt").read().split()))')
if [ -f /app/count.txt ] && [ "$(tr -d '[:space:]' < /app/count.txt)" = "$expected" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
