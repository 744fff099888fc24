build-clang/obj/src/cli/cmd_init.o: src/cli/cmd_init.c src/cli/cli.h \
  src/core/error.h src/core/project.h src/core/config.h src/core/prf.h

src/cli/cli.h:

src/core/error.h:

src/core/project.h:

src/core/config.h:

src/core/prf.h:
