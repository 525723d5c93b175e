# no "#!" line either; the working directory is the task's workdir
if [ "$(pwd)" = /srv ] && [ "$(cat greeting.txt 2>/dev/null)" = "hello, harbor" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
