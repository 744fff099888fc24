build-clang/obj/src/core/state.o: src/core/state.c src/core/state.h \
  src/core/error.h src/core/crashpoint.h src/core/jsonw.h \
  src/core/value.h

src/core/state.h:

src/core/error.h:

src/core/crashpoint.h:

src/core/jsonw.h:

src/core/value.h:
