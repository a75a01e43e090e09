"""eie.golden"""
