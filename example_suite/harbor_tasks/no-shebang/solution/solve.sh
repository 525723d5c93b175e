# no "#!" line: run by bash, as Harbor runs it
printf 'hello, harbor\n' > greeting.txt
