build-clang/obj/src/server/cron.o: src/server/cron.c src/server/cron.h \
  src/core/error.h

src/server/cron.h:

src/core/error.h:
