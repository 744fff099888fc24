build-clang/obj/src/server/scheduler.o: src/server/scheduler.c \
  src/server/scheduler.h src/core/config.h src/core/error.h \
  src/core/runlog.h src/core/log.h src/server/cron.h

src/server/scheduler.h:

src/core/config.h:

src/core/error.h:

src/core/runlog.h:

src/core/log.h:

src/server/cron.h:
