build-clang/obj/src/sources/sqlite.o: src/sources/sqlite.c \
  src/sources/source.h src/core/config.h src/core/error.h \
  src/core/value.h

src/sources/source.h:

src/core/config.h:

src/core/error.h:

src/core/value.h:
