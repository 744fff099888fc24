build-clang/obj/src/core/vault.o: src/core/vault.c src/core/vault.h \
  src/core/error.h src/core/prf.h src/core/jsonw.h src/core/value.h

src/core/vault.h:

src/core/error.h:

src/core/prf.h:

src/core/jsonw.h:

src/core/value.h:
