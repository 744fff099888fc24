build-clang/obj/src/cli/cli_common.o: src/cli/cli_common.c src/cli/cli.h \
  src/core/error.h src/core/project.h src/core/config.h src/core/prf.h \
  src/core/jsonw.h src/core/value.h src/core/runner.h src/core/runlog.h

src/cli/cli.h:

src/core/error.h:

src/core/project.h:

src/core/config.h:

src/core/prf.h:

src/core/jsonw.h:

src/core/value.h:

src/core/runner.h:

src/core/runlog.h:
