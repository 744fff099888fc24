build-clang/obj/src/core/crashpoint.o: src/core/crashpoint.c \
  src/core/crashpoint.h

src/core/crashpoint.h:
