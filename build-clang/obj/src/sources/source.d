build-clang/obj/src/sources/source.o: src/sources/source.c \
  src/sources/source.h src/core/config.h src/core/error.h \
  src/core/value.h

src/sources/source.h:

src/core/config.h:

src/core/error.h:

src/core/value.h:
