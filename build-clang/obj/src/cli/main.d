build-clang/obj/src/cli/main.o: src/cli/main.c src/cli/cli.h \
  src/core/error.h src/core/project.h src/core/config.h src/core/prf.h \
  src/core/log.h src/core/runner.h src/core/jsonw.h src/core/value.h \
  src/core/runlog.h

src/cli/cli.h:

src/core/error.h:

src/core/project.h:

src/core/config.h:

src/core/prf.h:

src/core/log.h:

src/core/runner.h:

src/core/jsonw.h:

src/core/value.h:

src/core/runlog.h:
