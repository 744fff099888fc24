build-clang/obj/src/destinations/registry.o: src/destinations/registry.c \
  src/destinations/destination.h src/core/config.h src/core/error.h \
  src/core/mapping.h src/core/jsonw.h src/core/value.h src/core/prf.h \
  src/core/params.h

src/destinations/destination.h:

src/core/config.h:

src/core/error.h:

src/core/mapping.h:

src/core/jsonw.h:

src/core/value.h:

src/core/prf.h:

src/core/params.h:
