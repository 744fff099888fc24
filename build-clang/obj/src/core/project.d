build-clang/obj/src/core/project.o: src/core/project.c src/core/project.h \
  src/core/config.h src/core/error.h src/core/prf.h

src/core/project.h:

src/core/config.h:

src/core/error.h:

src/core/prf.h:
