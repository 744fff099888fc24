build-clang/obj/src/core/jsonw.o: src/core/jsonw.c src/core/jsonw.h \
  src/core/value.h src/core/error.h

src/core/jsonw.h:

src/core/value.h:

src/core/error.h:
