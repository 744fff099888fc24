build-clang/obj/src/core/mapping.o: src/core/mapping.c src/core/mapping.h \
  src/core/config.h src/core/error.h src/core/jsonw.h src/core/value.h \
  src/core/prf.h

src/core/mapping.h:

src/core/config.h:

src/core/error.h:

src/core/jsonw.h:

src/core/value.h:

src/core/prf.h:
