from labcoat.cli import main

main()
