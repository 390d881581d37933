from labcoat.entry import main

main()
