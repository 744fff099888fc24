build-clang/obj/src/cli/cmd_reset.o: src/cli/cmd_reset.c src/cli/cli.h \
  src/core/error.h src/core/project.h src/core/config.h src/core/prf.h \
  src/core/state.h

src/cli/cli.h:

src/core/error.h:

src/core/project.h:

src/core/config.h:

src/core/prf.h:

src/core/state.h:
