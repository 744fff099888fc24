build-clang/obj/src/cli/cmd_validate.o: src/cli/cmd_validate.c \
  src/cli/cli.h src/core/error.h src/core/project.h src/core/config.h \
  src/core/prf.h src/core/mapping.h src/core/jsonw.h src/core/value.h \
  src/destinations/destination.h src/core/params.h src/sources/source.h

src/cli/cli.h:

src/core/error.h:

src/core/project.h:

src/core/config.h:

src/core/prf.h:

src/core/mapping.h:

src/core/jsonw.h:

src/core/value.h:

src/destinations/destination.h:

src/core/params.h:

src/sources/source.h:
