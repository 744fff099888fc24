build-clang/obj/src/core/params.o: src/core/params.c src/core/params.h \
  src/core/config.h src/core/error.h

src/core/params.h:

src/core/config.h:

src/core/error.h:
