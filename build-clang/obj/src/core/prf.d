build-clang/obj/src/core/prf.o: src/core/prf.c src/core/prf.h \
  src/core/error.h

src/core/prf.h:

src/core/error.h:
