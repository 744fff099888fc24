build-clang/obj/src/core/runlog.o: src/core/runlog.c src/core/runlog.h \
  src/core/error.h src/core/jsonw.h src/core/value.h

src/core/runlog.h:

src/core/error.h:

src/core/jsonw.h:

src/core/value.h:
